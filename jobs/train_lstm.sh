#!/bin/bash
# Train the recipe LSTM on every GPU of the allocation: one process per GPU, started by srun.
#
#   sbatch jobs/train_lstm.sh                                   # DATA=data RUN=runs/train
#   DATA=/scratch/me/data RUN=/scratch/me/run1 sbatch --nodes=2 jobs/train_lstm.sh
#   sbatch --gpus-per-node=2 --ntasks-per-node=2 --time=2:00:00 jobs/train_lstm.sh
#   TRAIN_ARGS="--epochs 50 --batch-size 256" sbatch jobs/train_lstm.sh
#   sbatch jobs/train_lstm.sh --epochs 50 --batch-size 256      # the same: after the script name
#
# Every #SBATCH line can be overridden on the sbatch command line (before the script name); the
# training flags come after the script name, or from TRAIN_ARGS in the environment (sbatch passes
# it on). TRAIN_ARGS is split at whitespace and nothing else: no globbing, no quotes, so a value
# with a space goes after the script name instead. Flags after the script name win over
# TRAIN_ARGS. Keep --ntasks-per-node equal to the GPUs per node (more tasks than GPUs is refused).
# Name the job after its run with `sbatch -J run1 ...`: squeue and sacct show the name.
#
# Time limits: Slurm sends USR2 to every rank 300 s before the limit. The ranks agree to stop at
# the next step, rank 0 writes a checkpoint and runs `scontrol requeue`; the requeued job
# resumes from it (--resume auto) and carries on until the epochs are done.
# HPC_RNN_MAX_REQUEUES (default 50) caps the requeues. `scancel` (TERM) also makes the ranks
# checkpoint, but the job stops (CANCELLED): submit it again to continue. Pre-emption
# (PreemptMode=REQUEUE) is requeued by Slurm itself. In an allocation with GPUs, torch must
# see CUDA or the job stops at once; a CPU partition (sbatch --gpus-per-node=0 ...) trains on
# CPU, and so does --device cpu after the script name.
#SBATCH --job-name=hpc_rnn_train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=4
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=USR2@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
py=${HPC_RNN_PYTHON:-python}
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
# Since Slurm 22.05 srun no longer takes --cpus-per-task from sbatch: without this each rank
# would get one CPU.
export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
echo "$(date -Is) job ${SLURM_JOB_ID:-?} start ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}:" \
     "${SLURM_NTASKS:-1} tasks, GPUs ${CUDA_VISIBLE_DEVICES:-none}"
# `read -ra` splits at whitespace without the pathname expansion of an unquoted ${TRAIN_ARGS}.
read -ra train_args <<<"${TRAIN_ARGS:-}"
# srun passes USR2/TERM on to every task; --kill-on-bad-exit ends all ranks when one fails.
# `&` + `wait` keeps the batch shell responsive to signals meanwhile.
srun --kill-on-bad-exit=1 "$py" -m hpc_rnn.train --data "${DATA:-data}" --run "${RUN:-runs/train}" \
    --resume auto --max-requeues "${HPC_RNN_MAX_REQUEUES:-50}" "${train_args[@]}" "$@" &
wait $! && rc=0 || rc=$?
case "$rc" in
    0) what="done" ;;
    75) what="stopped by a signal after a checkpoint (requeued before a time limit)" ;;
    *) what="failed: resubmit to resume from the last checkpoint" ;;
esac
echo "$(date -Is) job ${SLURM_JOB_ID:-?} training exited with $rc: $what"
exit "$rc"
