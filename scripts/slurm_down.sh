#!/usr/bin/env bash
# Stop the CI Slurm started by scripts/slurm_up.sh, by the pids it recorded.
#
#   scripts/slurm_down.sh          # stop daemons, keep state + accounting database
#   scripts/slurm_down.sh --wipe   # ... and remove ${HPC_RNN_SLURM_DIR:-/tmp/hpc_rnn_slurm}
#
# --wipe removes the Slurm state and the accounting database together: wiping
# only the state restarts job ids at 1 while the database remembers the old ones.
set -euo pipefail

BASE="${HPC_RNN_SLURM_DIR:-/tmp/hpc_rnn_slurm}"
RUN="$BASE/run"
WIPE=0
case "${1:-}" in
    --wipe) WIPE=1 ;;
    "") ;;
    *) echo "usage: $0 [--wipe]" >&2; exit 2 ;;
esac

say() { echo "slurm_down: $*" >&2; }

# pid_of PIDFILE NAME: print the pid if it runs a live (non-zombie) NAME.
pid_of() {
    local pid state
    [ -s "$1" ] || return 1
    pid=$(tr -dc 0-9 2>/dev/null <"$1") || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
    echo "$pid"
}

# stop PIDFILE NAME: TERM, wait up to 20 s, then KILL. A zombie counts as stopped.
stop() {
    local pid
    pid=$(pid_of "$1" "$2") || { rm -f "$1"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        pid_of "$1" "$2" >/dev/null || break
        sleep 0.2
    done
    if pid_of "$1" "$2" >/dev/null; then
        say "$2 ($pid) ignored TERM for 20 s, killing"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            pid_of "$1" "$2" >/dev/null || break
            sleep 0.1
        done
    fi
    if pid_of "$1" "$2" >/dev/null; then
        say "$2 ($pid) is still running"
        return 1
    fi
    rm -f "$1"
    say "stopped $2 ($pid)"
}

rc=0
if [ "$WIPE" = 1 ] && pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null; then
    # Jobs would outlive slurmd (their slurmstepd keeps running): cancel them first.
    export SLURM_CONF="$BASE/etc/slurm.conf" PATH="$PATH:/usr/sbin"
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 75); do
            [ -z "$(squeue -h -t R,CG -o %A 2>/dev/null)" ] && break
            sleep 0.2
        done
        say "cancelled jobs: ${jobs//$'\n'/ }"
    fi
fi
# Compute nodes first, the database last; munged outlives everything that authenticates with it.
for pidfile in "$RUN"/slurmd-*.pid "$RUN/slurmd.pid"; do  # one per node (and an older layout's)
    [ -e "$pidfile" ] || continue
    stop "$pidfile" slurmd || rc=1
done
stop "$RUN/slurmctld.pid" slurmctld || rc=1
stop "$RUN/slurmdbd.pid" slurmdbd || rc=1
db_name=mariadbd
if [ -s "$RUN/mariadbd.pid" ] && [ "$(cat "/proc/$(tr -dc 0-9 2>/dev/null <"$RUN/mariadbd.pid")/comm" 2>/dev/null)" = mysqld ]; then
    db_name=mysqld
fi
stop "$RUN/mariadbd.pid" "$db_name" || rc=1
stop "$RUN/munged.pid" munged || rc=1

if [ "$rc" -ne 0 ]; then
    say "some daemons did not stop; not wiping"
    exit 1
fi
if [ "$WIPE" = 1 ] && [ -d "$BASE" ]; then
    rm -rf "$BASE"
    say "removed $BASE"
fi
