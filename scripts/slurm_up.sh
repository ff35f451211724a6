#!/usr/bin/env bash
# Bring up a Slurm (22.05, Debian 12) of two compute nodes on this one machine, for CI, from
# nothing, idempotently.
#
#   scripts/slurm_up.sh            # installs packages if missing, starts everything
#   eval "$(scripts/slurm_up.sh | tail -n 1)"   # or: . scripts/slurm_env.sh
#
# Everything lives under ${HPC_RNN_SLURM_DIR:-/tmp/hpc_rnn_slurm}: munge key and
# socket, slurm.conf / slurmdbd.conf / gres.conf, state, spool, logs, pid files
# and the MariaDB datadir (127.0.0.1:${HPC_RNN_SLURM_DB_PORT:-3307}). Daemons are
# started here in the background (no systemd) and stopped by scripts/slurm_down.sh.
# Slurm itself uses ports 6817 (slurmctld), 6819 (slurmdbd), 6818 and 6828 (slurmd of n1, n2).
#
# Two compute nodes, n1 (127.0.0.1) and n2 (127.0.0.2), one slurmd each with its own port,
# spool, log and pid file ("slurmd -N n1"), so that multi-node jobs (srun across nodes, the
# first host as rendezvous master, requeue of a 2-node job) run for real. Their names go into
# /etc/hosts: a job's first host is its master address and must resolve. Each node advertises
# NODE_CPUS CPUs (default 4, more than this machine has: SlurmdParameters=config_overrides),
# so that 4 tasks per node fit, as on a node with 4 GPUs.
#
# Accounting (slurmdbd + MariaDB) is not optional: submitit polls sacct, and
# without accounting a cancelled job stays UNKNOWN and job.result() can hang.
#
# Fake GPUs: each node advertises Gres=gpu:4 (gres.conf: File= four symlinks to
# /dev/null under $HPC_RNN_SLURM_DIR/dev), so job scripts asking for --gres=gpu:N
# or --gpus-per-node=N (N <= 4) are accepted and run with CUDA_VISIBLE_DEVICES=0..N-1
# set. There are no GPUs behind them: code must still check torch.cuda.is_available().
# (Measured: gres.conf "Name=gpu Count=4" without File= makes the node INVAL,
# "gres/gpu count reported lower than configured (0 < 4)"; File= on regular files
# is refused, "not a valid character or block device"; symlinks to /dev/null and
# mknod copies of /dev/null both work.)
#
# Last line on success: "export SLURM_CONF=...". Exit codes: 0 ready, 1 a daemon
# did not come up (reason + log tail printed), 3 cannot even try (not root, apt failed).
set -euo pipefail
umask 022
# Messages go to fd 3 (the caller's stderr), even from inside commands whose output
# is silenced. Daemons are started with 3>&- and </dev/null: an inherited fd would
# keep a caller's pipe (slurm_up.sh | tail) open forever.
exec 3>&2

BASE="${HPC_RNN_SLURM_DIR:-/tmp/hpc_rnn_slurm}"
TIMEOUT="${HPC_RNN_SLURM_TIMEOUT:-60}"
DB_PORT="${HPC_RNN_SLURM_DB_PORT:-3307}"
NGPU=4
NODES="n1 n2"
NODE_CPUS="${HPC_RNN_SLURM_NODE_CPUS:-4}"
CLUSTER=hpc_rnn
export PATH="$PATH:/usr/sbin:/sbin"

ETC="$BASE/etc" RUN="$BASE/run" LOG="$BASE/log" MUNGE="$BASE/munge"
DB="$BASE/mysql" DEV="$BASE/dev"
MUNGE_SOCK="$RUN/munge.socket"
DB_SOCK="$RUN/mysqld.sock"
export SLURM_CONF="$ETC/slurm.conf"

say() { echo "slurm_up: $*" >&3; }
cannot() { echo "slurm_up: cannot start: $*" >&3; exit 3; }
fail() {  # fail REASON [DAEMON|LOGFILE...]: print REASON and the tails of the logs, exit 1.
    local reason=$1 arg f
    shift
    say "FAILED: $reason"
    for arg in "$@"; do
        case "$arg" in
            /*) echo "$arg" ;;
            *) logs_of "$arg" ;;
        esac
    done | tr ' ' '\n' | awk 'NF && !seen[$0]++' | while read -r f; do
        [ -f "$f" ] || continue
        echo "----- tail of $f -----" >&3
        tail -n 25 "$f" >&3
    done
    exit 1
}

# comm_of DAEMON: the process name of DAEMON (MariaDB's server may be mysqld).
# A node's slurmd is known as slurmd-NODE (its pid file $RUN/slurmd-NODE.pid).
comm_of() {
    case "$1" in
        mariadbd) basename "${MARIADBD:-mariadbd}" ;;
        slurmd-*) echo slurmd ;;
        *) echo "$1" ;;
    esac
}

# alive DAEMON: the pid in $RUN/DAEMON.pid runs DAEMON and is not a zombie
# (a killed daemon stays a zombie for a few seconds here).
alive() {
    local pid state
    pid=$(tr -dc 0-9 2>/dev/null <"$RUN/$1.pid") || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(comm_of "$1")" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# logs_of DAEMON: the files worth showing when DAEMON fails.
logs_of() {
    case "$1" in
        munged) echo "$LOG/munged.out $MUNGE/munged.log" ;;
        mariadbd) echo "$LOG/mariadb.log" ;;
        *) echo "$LOG/$1.out $LOG/$1.log" ;;
    esac
}

# wait_ready SECONDS "DAEMONS" WHAT CMD...: retry CMD quietly every 0.2 s until it
# succeeds. Fails (with the logs) as soon as one of DAEMONS has exited, or after SECONDS.
wait_ready() {
    local limit=$1 daemons=$2 what=$3 t0=$SECONDS d
    shift 3
    until "$@" >/dev/null 2>&1; do
        for d in $daemons; do
            # A daemonizing process writes its pid file a moment after it returns.
            if [ -s "$RUN/$d.pid" ] || [ $((SECONDS - t0)) -ge 5 ]; then
                alive "$d" || fail "$d is not running (waiting for $what)" "$d"
            fi
        done
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            # shellcheck disable=SC2086
            fail "timed out after ${limit}s waiting for $what" $daemons
        fi
        sleep 0.2
    done
}

# stop DAEMON: TERM it and wait (used when the configuration changed).
stop() {
    alive "$1" || return 0
    say "configuration changed, restarting $1"
    kill "$(tr -dc 0-9 <"$RUN/$1.pid")" 2>/dev/null || true
    for _ in $(seq 100); do
        alive "$1" || return 0
        sleep 0.2
    done
    fail "$1 did not stop within 20 s" "$1"
}

# write_file PATH MODE: stdin -> PATH if the content changed; returns 0 if it changed.
write_file() {
    local tmp="$1.tmp.$$"
    cat >"$tmp"
    chmod "$2" "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$1"
}

# ---------------------------------------------------------------- packages
[ "$(id -u)" -eq 0 ] || cannot "must run as root (installs packages, runs slurmd as root)"
case "$BASE" in
    /*[[:space:]]* | *[[:space:]]*) cannot "HPC_RNN_SLURM_DIR must not contain whitespace: '$BASE'" ;;
    /*) ;;
    *) cannot "HPC_RNN_SLURM_DIR must be an absolute path: '$BASE'" ;;
esac

have_all() {
    local b
    for b in munged slurmctld slurmd slurmdbd sbatch sacctmgr; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
    command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || return 1
    command -v mariadb-install-db >/dev/null 2>&1 || command -v mysql_install_db >/dev/null 2>&1 || return 1
}
if ! have_all; then
    command -v apt-get >/dev/null 2>&1 || cannot "Slurm packages missing and no apt-get"
    say "installing munge, Slurm and MariaDB packages"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p "$LOG"
    apt-get update -qq >"$LOG/apt.log" 2>&1 || { tail -n 5 "$LOG/apt.log" >&2; cannot "apt-get update failed"; }
    apt-get install -y -qq --no-install-recommends \
        munge slurm-client slurmctld slurmd slurmdbd mariadb-server >>"$LOG/apt.log" 2>&1 \
        || { tail -n 5 "$LOG/apt.log" >&2; cannot "apt-get install failed (log: $LOG/apt.log)"; }
    have_all || cannot "packages installed but a daemon binary is still missing"
fi
MARIADBD=$(command -v mariadbd || command -v mysqld)
INSTALL_DB=$(command -v mariadb-install-db || command -v mysql_install_db)
DB_CLIENT=$(command -v mariadb || command -v mysql)
DB_ADMIN=$(command -v mariadb-admin || command -v mysqladmin)

# ---------------------------------------------------------------- node names
# The nodes' names must resolve (a job's first host is its rendezvous master: without it,
# c10d retries "Name or service not known" for minutes). Add what is missing, keep the rest.
add_host() {  # add_host ADDR NAME
    if ! awk -v a="$1" -v n="$2" '$1 == a { for (i = 2; i <= NF; i++) if ($i == n) f = 1 } END { exit !f }' /etc/hosts; then
        echo "$1 $2" >>/etc/hosts || cannot "cannot add '$1 $2' to /etc/hosts"
        say "added '$1 $2' to /etc/hosts"
    fi
}
add_host 127.0.0.1 n1
add_host 127.0.0.2 n2

# ---------------------------------------------------------------- layout
# munged insists that every directory above its socket is enterable by all
# (755) and that its key/seed/log directory is private (700).
mkdir -p "$BASE" "$ETC" "$RUN" "$LOG" "$MUNGE" "$DB" "$DEV" "$BASE/state"
for n in $NODES; do mkdir -p "$BASE/spool/$n"; done
chmod 755 "$BASE" "$ETC" "$RUN" "$LOG" "$DEV"
chmod 700 "$MUNGE" "$DB"

HOST=$(hostname -s)
NCPU=$(nproc)
# The two nodes share this machine's memory.
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 * 0.45 / 1024}' /proc/meminfo)

# Fake GPU devices: slurmd stat()s every File= in gres.conf and wants a character
# or block device; a symlink to /dev/null is one (no mknod needed), task/none never opens it.
for i in $(seq 0 $((NGPU - 1))); do
    [ -c "$DEV/nvidia$i" ] || ln -sfn /dev/null "$DEV/nvidia$i"
done

changed=0
write_file "$ETC/slurm.conf" 644 <<EOF && changed=1
# Generated by scripts/slurm_up.sh; edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job waits ~cred_expire+ s (default 120 -> ~150 s PENDING).
AuthInfo=socket=$MUNGE_SOCK,cred_expire=10
StateSaveLocation=$BASE/state
# %n: each node's slurmd has its own spool, pid and log file.
SlurmdSpoolDir=$BASE/spool/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
# The nodes advertise more CPUs than this machine has; without this they would be INVAL.
SlurmdParameters=config_overrides
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# pgid: with linuxproc, background children of a finished batch script escaped.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
JobRequeue=1
# Accounting through slurmdbd: submitit reads job states with sacct.
# slurmctld->slurmdbd auth ignores AuthInfo=socket=, hence AccountingStoragePass.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStoragePass=$MUNGE_SOCK
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=6818 CPUs=$NODE_CPUS RealMemory=$MEM_MB Gres=gpu:$NGPU State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.2 Port=6828 CPUs=$NODE_CPUS RealMemory=$MEM_MB Gres=gpu:$NGPU State=UNKNOWN
# A finite MaxTime, as real partitions have: hpc_rnn.submit's check refuses a job over it (without
# EnforcePartLimits, sbatch queues such a job and it pends forever with PartitionTimeLimit).
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=1-00:00:00 State=UP
EOF

write_file "$ETC/gres.conf" 644 <<EOF && changed=1
# Generated by scripts/slurm_up.sh: fake GPUs (symlinks to /dev/null).
AutoDetect=off
NodeName=n[1-2] Name=gpu File=$DEV/nvidia[0-$((NGPU - 1))]
EOF

DB_PASS=hpc_rnn_ci
# slurmdbd has no -f: it reads slurmdbd.conf beside $SLURM_CONF, mode 600.
write_file "$ETC/slurmdbd.conf" 600 <<EOF && changed=1
# Generated by scripts/slurm_up.sh; edits are overwritten.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

if [ "$changed" = 1 ]; then
    # The daemons that are running were started with another configuration (slurmd: the one
    # node of an older version of this script).
    stop slurmd
    for n in $NODES; do stop "slurmd-$n"; done
    stop slurmctld
    stop slurmdbd
fi

# ---------------------------------------------------------------- munge
if ! alive munged; then
    if [ ! -s "$MUNGE/munge.key" ]; then
        dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
    fi
    chmod 600 "$MUNGE/munge.key"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock" "$RUN/munged.pid"
    munged --key-file="$MUNGE/munge.key" --socket="$MUNGE_SOCK" \
        --log-file="$MUNGE/munged.log" --pid-file="$RUN/munged.pid" \
        --seed-file="$MUNGE/munged.seed" </dev/null >>"$LOG/munged.out" 2>&1 3>&- \
        || fail "munged did not start" munged
fi
wait_ready 10 munged "munge on $MUNGE_SOCK" \
    bash -c "munge -S '$MUNGE_SOCK' -n | unmunge -S '$MUNGE_SOCK'"

# ---------------------------------------------------------------- MariaDB
if ! alive mariadbd; then
    if [ ! -d "$DB/mysql" ]; then
        "$INSTALL_DB" --no-defaults --datadir="$DB" --user=root --skip-test-db \
            >"$LOG/mariadb-install.log" 2>&1 \
            || fail "mariadb-install-db failed" "$LOG/mariadb-install.log"
    fi
    rm -f "$DB_SOCK" "$RUN/mariadbd.pid"
    # setsid: out of the caller's process group (CI steps may kill that group).
    # In a script it does not fork, so $! is the server's pid.
    setsid "$MARIADBD" --no-defaults --user=root --datadir="$DB" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --socket="$DB_SOCK" \
        --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" \
        --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
        </dev/null >>"$LOG/mariadb.log" 2>&1 3>&- &
    echo $! >"$RUN/mariadbd.pid"
fi
wait_ready "$TIMEOUT" mariadbd "MariaDB on $DB_SOCK" \
    "$DB_ADMIN" --no-defaults -S "$DB_SOCK" -u root ping
"$DB_CLIENT" --no-defaults -S "$DB_SOCK" -u root -e \
    "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
     GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
    || fail "cannot create the slurm database user" "$LOG/mariadb.log"

# ---------------------------------------------------------------- slurmdbd
if ! alive slurmdbd; then
    rm -f "$RUN/slurmdbd.pid"
    slurmdbd </dev/null >>"$LOG/slurmdbd.out" 2>&1 3>&- || fail "slurmdbd did not start" slurmdbd
fi
wait_ready "$TIMEOUT" "slurmdbd mariadbd" "slurmdbd (sacctmgr)" sacctmgr -n list cluster
# Register the cluster before slurmctld first talks to slurmdbd.
if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster 2>/dev/null)" ]; then
    sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster failed" slurmdbd
fi

# ---------------------------------------------------------------- slurmctld, slurmd
if ! alive slurmctld; then
    rm -f "$RUN/slurmctld.pid"
    slurmctld -f "$SLURM_CONF" </dev/null >>"$LOG/slurmctld.out" 2>&1 3>&- \
        || fail "slurmctld did not start" slurmctld
fi
for n in $NODES; do
    if ! alive "slurmd-$n"; then
        rm -f "$RUN/slurmd-$n.pid"
        slurmd -f "$SLURM_CONF" -N "$n" </dev/null >>"$LOG/slurmd-$n.out" 2>&1 3>&- \
            || fail "slurmd of $n did not start" "slurmd-$n"
    fi
done

resumed=""
node_ready() {  # node_ready NODE
    local st reason
    st=$(sinfo -h -N -n "$1" -o %t 2>/dev/null | head -n 1)
    case "$st" in
        idle | mix | alloc | comp) return 0 ;;  # busy only when jobs survived a restart
        inval)
            fail "node $1 is INVAL: $(sinfo -h -N -n "$1" -o %E 2>&1)" "slurmd-$1" slurmctld ;;
        drain | drng)
            # A drain survives restarts in the state files; on a CI cluster, lift it once.
            case " $resumed " in *" $1 "*) ;; *)
                resumed="$resumed $1"
                reason=$(sinfo -h -N -n "$1" -o %E 2>&1)
                say "node $1 was drained ($reason), resuming it"
                scontrol update NodeName="$1" State=RESUME ;;
            esac
            return 1 ;;
        *) return 1 ;;
    esac
}
for n in $NODES; do
    wait_ready "$TIMEOUT" "slurmctld slurmd-$n" "node $n to be idle in sinfo" node_ready "$n"
done
wait_ready "$TIMEOUT" "slurmdbd slurmctld" "sacct to answer" sacct -n -X -o JobID

say "ready: nodes n1 n2 on $HOST (each $NODE_CPUS CPUs of this machine's $NCPU, ${MEM_MB} MB, gpu:$NGPU fake) in $SECONDS s, base $BASE"
echo "export SLURM_CONF=$SLURM_CONF"
