#!/usr/bin/env bash
# Make .venv (or $HPC_RNN_VENV) with the project installed; extras as the first argument.
#
# PyTorch: an importable torch in the venv is kept. Otherwise torch==$HPC_RNN_TORCH (2.13.0) is
# installed: on a machine with a local CPU wheel of it pip takes that; on a cluster it is
# PyPI's default Linux build, which carries CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-mpi}
venv=${HPC_RNN_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "torch==${HPC_RNN_TORCH:-2.13.0}"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
