# shellcheck shell=bash
# Source me (". scripts/slurm_env.sh") to talk to the CI Slurm started by
# scripts/slurm_up.sh: exports SLURM_CONF (jobs inherit it) and makes sure the
# Slurm/MariaDB admin binaries in /usr/sbin are on PATH.
export HPC_RNN_SLURM_DIR="${HPC_RNN_SLURM_DIR:-/tmp/hpc_rnn_slurm}"
export SLURM_CONF="$HPC_RNN_SLURM_DIR/etc/slurm.conf"
case ":$PATH:" in
    *:/usr/sbin:*) ;;
    *) export PATH="$PATH:/usr/sbin" ;;
esac
