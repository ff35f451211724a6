#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a GPU machine (under 8 minutes on an H100):
# the GPU-marked tests, then the bench's training and generation figures on the GPU.
# Everything goes to one file: $OUT/gpu_check.txt when OUT is set, else runs/gpu_check.txt
# (the bench's own files beside it, in bench/).
#
# Without CUDA it runs too: the GPU tests skip and the GPU bench is skipped, and it says so.
# HPC_RNN_GPU_CHECK_QUICK=1 runs the bench at its tiny sizes, on the CPU when there is no GPU:
# a smoke test of this script (tests/test_bench.py), its figures mean nothing.
# Python: $HPC_RNN_PYTHON, else .venv/bin/python (scripts/setup.sh test), else python3.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs}
mkdir -p "$out"
py=${HPC_RNN_PYTHON:-}
if [ -z "$py" ]; then
    py=${HPC_RNN_VENV:-.venv}/bin/python
    [ -x "$py" ] || py=python3
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

main() {
    local status=0 device=cpu size=()
    echo "gpu_check: $(date -u +%FT%TZ) on $(hostname), python $py"
    command -v nvidia-smi >/dev/null && nvidia-smi
    if "$py" -c "import sys, torch
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())
sys.exit(not torch.cuda.is_available())"; then
        device=cuda
    else
        echo "gpu_check: no CUDA device visible: the GPU tests skip and the GPU bench is skipped"
    fi

    echo "== pytest -m gpu"
    timeout 180 "$py" -m pytest -m gpu -q -rs -p no:cacheprovider || status=1

    [ "${HPC_RNN_GPU_CHECK_QUICK:-0}" = 1 ] && size=(--tiny)
    if [ "$device" = cuda ] || [ ${#size[@]} -gt 0 ]; then
        # data_parallel needs 2 GPUs: not run here.
        echo "== bench on $device: train_throughput, generation"
        rm -f "$out/bench/bench.json"
        timeout 300 "$py" -m hpc_rnn.bench --device "$device" "${size[@]}" \
            --only train_throughput,generation --out "$out/bench" || status=1
        [ -f "$out/bench/bench.json" ] && cat "$out/bench/bench.json"
    fi
    echo "gpu_check: $([ $status = 0 ] && echo passed || echo FAILED)"
    return $status
}

main 2>&1 | tee "$out/gpu_check.txt"
exit "${PIPESTATUS[0]}"
