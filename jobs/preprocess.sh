#!/bin/bash
# Preprocess a recipe corpus into vocabulary + HDF5 shards with MPI ranks.
#
#   CORPUS=allrecipes.txt DATA=data sbatch jobs/preprocess.sh
#   CORPUS=big.txt DATA=/scratch/me/data sbatch --ntasks=16 jobs/preprocess.sh
#
# srun starts the ranks; MPI_PLUGIN (default pmi2) must match the MPI that mpi4py uses:
# pmi2 for MPICH (the `mpich` wheel) and most cluster MPIs. With Open MPI set
# LAUNCHER="mpiexec -n \$SLURM_NTASKS". A rank that sees an MPI world of 1 while srun started
# several says so and stops instead of doing the same work N times. --kill-on-bad-exit=1 ends the
# whole step when one task fails, so no rank is left waiting for a dead one until the time limit.
#SBATCH --job-name=hpc_rnn_preprocess
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
py=${HPC_RNN_PYTHON:-python}
# Since Slurm 22.05 srun no longer takes --cpus-per-task from sbatch.
export SRUN_CPUS_PER_TASK=${SLURM_CPUS_PER_TASK:-1}
launcher=${LAUNCHER:-srun --mpi=${MPI_PLUGIN:-pmi2} --kill-on-bad-exit=1}
# shellcheck disable=SC2086 # the launcher is a command line
$launcher "$py" -m hpc_rnn.preprocess "${CORPUS:?set CORPUS to the recipe text}" --out "${DATA:-data}" \
    ${PREPROCESS_ARGS:-}
