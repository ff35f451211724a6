#!/usr/bin/env bash
# Set up .venv with the test tools and run the whole test suite (and ruff) on the CPU.
# Tests marked slurm run when scripts/slurm_up.sh has started a cluster (SLURM_CONF set). A
# test whose part is missing (Slurm, mpiexec, the shared corpus) skips with the reason, or,
# with CI set (as .ci/run sets it), fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
venv=${HPC_RNN_VENV:-.venv}
"$venv/bin/ruff" check hpc_rnn tests
exec "$venv/bin/python" -m pytest "$@"
