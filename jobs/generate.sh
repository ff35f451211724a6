#!/bin/bash
# Write recipes from the newest checkpoint of a training run, one file per recipe.
#
#   RUN=runs/train OUT=recipes N=50 sbatch jobs/generate.sh
#   PROMPT="chocolate cake" GENERATE_ARGS="--temperature 0.9" sbatch jobs/generate.sh
#   sbatch jobs/generate.sh --temperature 0.9 --prompt "chocolate cake"   # flags after the name
#   TITLE="Lemon Chicken" INGREDIENTS=list.txt sbatch jobs/generate.sh     # ask for a recipe
#   COMPLETE=held.txt sbatch jobs/generate.sh     # new directions for every recipe of a file
#
# GENERATE_ARGS is split at whitespace and nothing else (no globbing, no quotes); a value with a
# space goes in PROMPT or TITLE or after the script name (`--ingredient "2 lemons"`). Flags
# after the script name win.
#SBATCH --job-name=hpc_rnn_generate
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
py=${HPC_RNN_PYTHON:-python}
# `read -ra` splits at whitespace without the pathname expansion of an unquoted ${GENERATE_ARGS}.
read -ra generate_args <<<"${GENERATE_ARGS:-}"
"$py" -m hpc_rnn.generate --checkpoint "${RUN:-runs/train}" --n "${N:-20}" \
    --out "${OUT:-${RUN:-runs/train}/recipes}" ${PROMPT:+--prompt "$PROMPT"} \
    ${TITLE:+--title "$TITLE"} ${INGREDIENTS:+--ingredients "$INGREDIENTS"} \
    ${COMPLETE:+--complete "$COMPLETE"} "${generate_args[@]}" "$@"
