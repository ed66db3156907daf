#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for the test suite and for trying sweeps.
#
# Debian 12's slurm 22.05 packages, no systemd: every daemon is started directly. Accounting
# (slurmdbd on a local MariaDB) is part of it because submitit reads job states from sacct;
# without it a cancelled job is never seen to end. Idempotent: daemons already running are kept.
#
#   bash slurm/start-cluster.sh            # start (installs the packages when missing)
#   bash slurm/stop-cluster.sh             # stop
#
# State (configs, logs, spool, database) lives in $FER_BENCH_SLURM_STATE
# (default /var/lib/fer-bench-slurm). Client commands find the config through the
# symlink /etc/slurm/slurm.conf, which is only created when no other config is there.
set -euo pipefail

STATE="${FER_BENCH_SLURM_STATE:-/var/lib/fer-bench-slurm}"
ETC="$STATE/etc"
LOG="$STATE/log"
RUN="$STATE/run"
PARTITION="${FER_BENCH_SLURM_PARTITION:-debug}"
CLUSTER_NAME="ferbench"
MYSQL_SOCKET=/run/mysqld/mysqld.sock   # the client library's default, which slurmdbd uses

say() { echo "start-cluster: $*"; }
die() { echo "start-cluster: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (daemons, /run/munge and /etc/slurm need it)"

# --- packages -------------------------------------------------------------------------------
need_install=0
for cmd in slurmctld slurmd slurmdbd sbatch munged mungekey mariadbd mariadb-install-db; do
    command -v "$cmd" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    say "installing slurm, munge and mariadb packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurmdbd slurm-client munge mariadb-server-core mariadb-client-core \
        >/dev/null
fi

# A process counts as alive only if it exists and is not a zombie: PID 1 here reaps late.
alive() {
    local pid="$1"
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}
pid_from() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }
running() { alive "$(pid_from "$1")"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local limit="$1" what="$2"
    shift 2
    local i
    for ((i = 0; i < limit * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$what did not come up within ${limit}s (logs in $LOG)"
}

mkdir -p "$ETC" "$LOG" "$RUN" "$STATE/ctld" "$STATE/spool" "$STATE/munge"
chmod 755 "$STATE"

# --- munge ----------------------------------------------------------------------------------
KEY="$STATE/munge/munge.key"
if [ ! -s "$KEY" ]; then
    mungekey --create --keyfile="$KEY" >/dev/null
fi
chown -R munge:munge "$STATE/munge"
chmod 700 "$STATE/munge"
chmod 600 "$KEY"
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 755 /run/munge
if ! running "$STATE/munge/munged.pid"; then
    say "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
    runuser -u munge -- munged --force --key-file="$KEY" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
fi
wait_for 10 munged bash -c 'munge -n | unmunge'

# --- MariaDB for slurmdbd -------------------------------------------------------------------
DB="$STATE/mysql"
if [ ! -d "$DB/mysql" ]; then
    say "initialising the accounting database"
    mariadb-install-db --user=root --datadir="$DB" --auth-root-authentication-method=socket \
        --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
fi
mkdir -p /run/mysqld
if ! running "$RUN/mariadb.pid"; then
    say "starting mariadbd"
    rm -f "$MYSQL_SOCKET"
    setsid mariadbd --no-defaults --user=root --datadir="$DB" --socket="$MYSQL_SOCKET" \
        --skip-networking --pid-file="$RUN/mariadb.pid" --log-error="$LOG/mariadb.log" \
        </dev/null >/dev/null 2>&1 &
fi
wait_for 30 mariadbd test -S "$MYSQL_SOCKET"

# --- configs --------------------------------------------------------------------------------
# Topology from the node itself; memory a little under what it reports so a later boot with a
# few MB less does not drain the node.
read -r cpus boards sockets cores threads mem < <(
    slurmd -C | sed -n 's/^NodeName=[^ ]* //p' | tr ' ' '\n' | awk -F= '
        {v[$1]=$2} END {print v["CPUs"], v["Boards"], v["SocketsPerBoard"], v["CoresPerSocket"], v["ThreadsPerCore"], v["RealMemory"]}'
)
mem=$((mem * 9 / 10))

cat >"$ETC/slurm.conf.new" <<EOF
# Written by fer-bench slurm/start-cluster.sh: a single-node test cluster.
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again once its old credential expired: 10 s, not the default 120 s.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
# No cgroups on these machines.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Start jobs as soon as they are submitted.
SchedulerParameters=batch_sched_delay=0,bf_interval=1
KillWait=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$ETC/slurmdbd.conf.new" <<EOF
# Written by fer-bench slurm/start-cluster.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF

changed=0
for f in slurm.conf slurmdbd.conf; do
    if ! cmp -s "$ETC/$f.new" "$ETC/$f"; then
        mv "$ETC/$f.new" "$ETC/$f"
        changed=1
    else
        rm -f "$ETC/$f.new"
    fi
done
chmod 644 "$ETC/slurm.conf"
chmod 600 "$ETC/slurmdbd.conf"

mkdir -p /etc/slurm
if [ -L /etc/slurm/slurm.conf ] || [ ! -e /etc/slurm/slurm.conf ]; then
    ln -sfn "$ETC/slurm.conf" /etc/slurm/slurm.conf
elif ! cmp -s /etc/slurm/slurm.conf "$ETC/slurm.conf"; then
    die "/etc/slurm/slurm.conf exists and is not ours; remove it or export SLURM_CONF=$ETC/slurm.conf"
fi
export SLURM_CONF="$ETC/slurm.conf"

if [ "$changed" = 1 ]; then  # a new config: restart whatever runs on the old one
    for d in slurmd slurmctld slurmdbd; do
        pid=$(pid_from "$RUN/$d.pid")
        if alive "$pid"; then
            say "config changed: restarting $d"
            kill "$pid" || true
            for _ in $(seq 50); do alive "$pid" || break; sleep 0.2; done
        fi
    done
fi

# --- slurmdbd, slurmctld, slurmd ------------------------------------------------------------
if ! running "$RUN/slurmdbd.pid"; then
    say "starting slurmdbd"
    slurmdbd
fi
wait_for 30 slurmdbd sacctmgr -n list cluster

if ! running "$RUN/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld
fi
wait_for 30 slurmctld scontrol ping

if ! running "$RUN/slurmd.pid"; then
    say "starting slurmd"
    slurmd -N localhost
fi

node_idle() {
    local st
    st=$(sinfo -h -n localhost -o '%T' 2>/dev/null | head -n1)
    case "$st" in
        idle | mixed | allocated | completing) return 0 ;;
        down* | drain* | fail*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true; return 1 ;;
        *) return 1 ;;
    esac
}
wait_for 60 "the node" node_idle
wait_for 30 "the accounting link" bash -c "sacctmgr -n list cluster format=cluster | grep -q $CLUSTER_NAME"
say "cluster up: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
