#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a GPU machine (141 s on an H100): the
# GPU-marked tests (a stop and resume on the GPU among them), the bench's training, peer and
# generation figures on the GPU, and, given HPC_RNN_DEV_CORPUS, the default configuration's
# windows/s at three batch sizes and its whole 20-epoch training with held-out and recipe scores.
# Everything goes to one file: $OUT/gpu_check.txt when OUT is set, else runs/gpu_check.txt,
# with the bench's bench.json, bench.md and bench.png beside it.
#
# Without CUDA nothing here is checked on a GPU, so it never reports "passed": it says so and
# exits 1. HPC_RNN_GPU_CHECK_QUICK=1 runs the bench at its tiny sizes, on the CPU when there is
# no GPU: a smoke test of this script (tests/test_bench.py) that exits 0 when the script works,
# and still says that no GPU was checked; its figures mean nothing.
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
        echo "== bench on $device: train_throughput, peer_throughput, generation"
        # The bench's cache and scratch go to a temporary directory; its three files beside this log.
        local work
        work=$(mktemp -d)
        timeout 420 "$py" -m hpc_rnn.bench --device "$device" "${size[@]}" \
            --only train_throughput,peer_throughput,generation --out "$work" || status=1
        if [ -f "$work/bench.json" ]; then
            cp "$work/bench.json" "$work/bench.md" "$work/bench.png" "$out/"
            cat "$work/bench.json"
        fi
        rm -rf "$work"
    fi
    if [ "$device" = cuda ] && [ -n "${HPC_RNN_DEV_CORPUS:-}" ]; then
        # What per-rank batch a GPU wants: the default configuration's training rate by batch.
        echo "== default configuration on cuda, windows/s by --batch-size"
        local data
        data=$(mktemp -d)
        "$py" -m hpc_rnn.preprocess "$HPC_RNN_DEV_CORPUS" --out "$data/data" >/dev/null || status=1
        for b in 32 128 512; do
            timeout 90 "$py" -m hpc_rnn.train --data "$data/data" --run-dir "$data/b$b" \
                --batch-size "$b" --max-steps 120 --log-every 20 --val-windows 512 \
                --ckpt-every-steps 1000 --no-requeue >"$data/b$b.log" 2>&1 || status=1
            "$py" -c "import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
w = [x['windows_per_s'] for x in r if 'windows_per_s' in x][1:]
v = [x['val_loss'] for x in r if 'val_loss' in x]
print('batch', sys.argv[2], 'windows/s', [round(x) for x in w], 'val_loss', v[-1:])" \
                "$data/b$b/metrics.jsonl" "$b" || { tail -5 "$data/b$b.log"; status=1; }
        done
        # The whole default training on the GPU, then what the README reports for the CPU run.
        echo "== default configuration on cuda: 20 epochs, then held-out scores and 50 recipes"
        local start=$SECONDS
        timeout 400 "$py" -m hpc_rnn.train --data "$data/data" --run-dir "$data/full" \
            --no-requeue >"$data/full.log" 2>&1 || { tail -5 "$data/full.log"; status=1; }
        grep -E '"kind": "epoch"' "$data/full/metrics.jsonl" | tail -3
        echo "training took $((SECONDS - start)) s wall (validation and checkpoints included)"
        timeout 200 "$py" -m hpc_rnn.evaluate --checkpoint "$data/full" --windows 0 \
            --generate 50 || status=1
        rm -rf "$data"
    fi
    if [ $status != 0 ]; then
        echo "gpu_check: FAILED"
    elif [ "$device" = cuda ]; then
        echo "gpu_check: passed"
    elif [ ${#size[@]} -gt 0 ]; then
        echo "gpu_check: smoke run of this script on the CPU worked; NOT a GPU check (no CUDA device)"
    else
        echo "gpu_check: NOT RUN: no CUDA device visible, so nothing was checked on a GPU"
        status=1
    fi
    return $status
}

main 2>&1 | tee "$out/gpu_check.txt"
exit "${PIPESTATUS[0]}"
