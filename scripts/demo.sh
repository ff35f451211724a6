#!/usr/bin/env bash
# The whole job on the built-in demo corpus, from nothing: set up .venv, write the corpus,
# preprocess it, train, and generate recipes. Outputs under runs/demo/ (or $1):
#   corpus.txt  data/ (vocab.json, shards, manifest)  run/ (checkpoints, metrics, curves.png)
#   recipes/ (one file per recipe + manifest.jsonl)
# Run it again and training resumes from its last checkpoint instead of starting over.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/demo}
bash scripts/setup.sh mpi,plot
py=${HPC_RNN_VENV:-.venv}/bin/python
mkdir -p "$out"
[ -s "$out/corpus.txt" ] || "$py" -m hpc_rnn.demo_corpus --recipes "${DEMO_RECIPES:-600}" --seed 0 --out "$out/corpus.txt"
[ -s "$out/data/manifest.json" ] || "$py" -m hpc_rnn.preprocess "$out/corpus.txt" --out "$out/data"
"$py" -m hpc_rnn.train --data "$out/data" --run "$out/run" --epochs "${DEMO_EPOCHS:-12}" \
    --batch-size 64 --lr 0.005 --warmup-steps 20 --ckpt-every-minutes 1
"$py" -m hpc_rnn.generate --checkpoint "$out/run" --n 5 --out "$out/recipes" --overwrite
echo
echo "first generated recipe ($out/recipes/recipe-0001.txt):"
cat "$out/recipes/recipe-0001.txt"
