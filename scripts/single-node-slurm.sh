#!/usr/bin/env bash
# A one-node Slurm cluster on this host, for the batch-scheduler tests: munged, slurmctld
# and slurmd started directly (PID 1 need not be systemd), no cgroups, no accounting.
#   single-node-slurm.sh up     install what is missing, write the config, start, wait for the node
#   single-node-slurm.sh down   stop the three daemons by their pid files
#   single-node-slurm.sh status exit 0 if slurmctld answers
# Root only: it writes /etc/slurm/slurm.conf and /etc/munge/munge.key.
set -euo pipefail

PIDS=(/run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid)

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_by_pidfile() {
    local file=$1 pid
    running "$file" || { rm -f "$file"; return 0; }
    pid=$(cat "$file")
    kill -TERM "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$file"
}

write_config() {
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    install -d -m 0755 /etc/slurm
    cat > /etc/slurm/slurm.conf <<CONF
# Written by compute-endpoint's scripts/single-node-slurm.sh for its tests.
ClusterName=compute-endpoint-tests
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
# No cgroups: PID 1 is not systemd here, so the hierarchy is not delegated.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# Quick turnaround: schedule every second, kill 5 s after SIGTERM, forget jobs after a minute.
SchedulerParameters=sched_interval=1
MessageTimeout=10
KillWait=5
MinJobAge=60
InactiveLimit=0
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    printf 'CgroupPlugin=autodetect\nIgnoreSystemd=yes\n' > /etc/slurm/cgroup.conf
}

up() {
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
        echo "==> installing slurmctld slurmd slurm-client munge (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=600 slurmctld slurmd slurm-client munge >/dev/null
    fi
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
    install -d -m 0755 /var/spool/slurmd
    running /run/slurmctld.pid || write_config
    running /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
    running /run/slurmctld.pid || /usr/sbin/slurmctld
    running /run/slurmd.pid || /usr/sbin/slurmd
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
        case "$state" in idle*|mixed*|allocated*) echo "==> Slurm is up: node $(hostname -s) $state"; return 0;; esac
        sleep 0.5
    done
    echo "Slurm did not come up (node state: ${state:-none}); see /var/log/slurm/" >&2
    return 1
}

case "${1:-}" in
    up) up ;;
    down) for file in "${PIDS[@]}"; do stop_by_pidfile "$file"; done ;;
    status) running /run/slurmctld.pid && scontrol ping >/dev/null ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
