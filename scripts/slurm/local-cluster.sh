#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for testing the sweep scripts under a real scheduler
# (tests/slurm.rs). CPU only; slurmctld and slurmd run here, with munge for authentication, all
# state under one folder.
#
#   scripts/slurm/local-cluster.sh start DIR [SLOTS]   # prints `export SLURM_CONF=DIR/slurm.conf`
#   scripts/slurm/local-cluster.sh stop DIR
#
# Needs Debian's packages `slurm-wlm` and `munge` (`apt-get install slurm-wlm munge`; Slurm
# 22.05 on Debian 12) and root (slurmd starts jobs as their user). SLOTS (default 4) is how many
# one-CPU tasks run at once; it may exceed the machine's cores (the node is declared with SLOTS
# CPUs and slurmd told to accept that), so several points of one dataset run side by side as on a
# real cluster. Jobs are not confined (no cgroups), memory is not enforced, there is no accounting
# database: `scontrol show job` keeps finished jobs for 10 minutes.
set -euo pipefail

cmd=${1:?usage: local-cluster.sh start|stop DIR [SLOTS]}
dir=${2:?usage: local-cluster.sh start|stop DIR [SLOTS]}
slots=${3:-4}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf="$dir/slurm.conf"

# Stops the daemons, waiting up to 20 s for each to exit (jobs still running are left alone).
stop() {
    for name in slurmd slurmctld munged; do
        [ -f "$dir/$name.pid" ] || continue
        pid=$(cat "$dir/$name.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/$name.pid"
    done
}

case "$cmd" in
stop)
    stop
    exit 0
    ;;
start) ;;
*)
    echo "local-cluster.sh: unknown command '$cmd' (start or stop)" >&2
    exit 2
    ;;
esac

for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin"
    command -v "$tool" >/dev/null 2>&1 || { echo "local-cluster.sh: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "local-cluster.sh: run as root (slurmd starts the jobs)" >&2; exit 2; }
stop

# munge: its own key, socket and logs in DIR.
mkdir -p "$dir/munge"
if [ ! -f "$dir/munge/munge.key" ]; then
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
fi
chmod 700 "$dir/munge"
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munge.seed"

host=$(hostname -s)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
cat > "$conf" <<EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$slots RealMemory=4096 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

export SLURM_CONF="$conf"
slurmctld -f "$conf"
slurmd -f "$conf"

# Ready when the node is idle.
for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -q '^idle'; then
        echo "export SLURM_CONF=$conf"
        exit 0
    fi
    sleep 1
done
echo "local-cluster.sh: the node did not become idle within 60 s; see $dir/log/" >&2
sinfo >&2 || true
tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 1
