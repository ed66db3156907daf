#!/usr/bin/env bash
# Stop the single-node test cluster started by slurm/start-cluster.sh (its state is kept).
set -euo pipefail

STATE="${FER_BENCH_SLURM_STATE:-/var/lib/fer-bench-slurm}"
RUN="$STATE/run"

alive() {  # exists and is not a zombie (PID 1 here reaps late)
    local pid="$1"
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

stop() {  # stop NAME PIDFILE
    local name="$1" pidfile="$2" pid
    pid=$( ([ -s "$pidfile" ] && tr -dc '0-9' <"$pidfile") || true)
    if ! alive "$pid"; then
        rm -f "$pidfile"
        return 0
    fi
    echo "stop-cluster: stopping $name ($pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        alive "$pid" || { rm -f "$pidfile"; return 0; }
        sleep 0.2
    done
    echo "stop-cluster: $name did not stop in 20 s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

stop slurmd "$RUN/slurmd.pid"
stop slurmctld "$RUN/slurmctld.pid"
stop slurmdbd "$RUN/slurmdbd.pid"
stop mariadbd "$RUN/mariadb.pid"
stop munged "$STATE/munge/munged.pid"
echo "stop-cluster: stopped"
