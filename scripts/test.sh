#!/usr/bin/env bash
# Set up .venv with the test tools and run the whole test suite (and ruff) on the CPU.
# Tests marked slurm run when scripts/slurm_up.sh has started a cluster (SLURM_CONF set);
# they skip with the reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
venv=${HPC_RNN_VENV:-.venv}
"$venv/bin/ruff" check hpc_rnn tests
exec "$venv/bin/python" -m pytest "$@"
