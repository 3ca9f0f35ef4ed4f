#!/usr/bin/env bash
# A private single-node SLURM (Debian's Slurm 22.05 + munge) for CI and local trials.
#
#   launch/slurm_ci.sh start [STATE_DIR]   install if needed, write slurm.conf, start daemons
#   launch/slurm_ci.sh stop  [STATE_DIR]   stop the daemons this script started (by PID file)
#
# STATE_DIR (default /tmp/grok_tf_slurm) holds slurm.conf, logs, spool and PID files. Clients
# find this controller through SLURM_CONF: `start` prints `export SLURM_CONF=...` as its last
# line. Needs root. Exit code 3: SLURM is missing and cannot be installed here. Ports 16817/16818, so a site's own SLURM on the default ports is left alone.
# No cgroups and no accounting; two partitions: `main` (default, preemptible: requeue after a
# 20 s grace time) and `urgent` (preempts `main`).
set -euo pipefail

command=${1:-}
state_dir=$(realpath -m "${2:-/tmp/grok_tf_slurm}")
conf="$state_dir/slurm.conf"

die() { echo "slurm_ci.sh: $*" >&2; exit 1; }

install_slurm() {  # exit code 3 if SLURM is missing and cannot be installed
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
      && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  [[ $(id -u) -eq 0 ]] \
    || { echo "slurm_ci.sh: SLURM is missing; installing it needs root" >&2; exit 3; }
  command -v apt-get >/dev/null \
    || { echo "slurm_ci.sh: SLURM is missing and apt-get is not available" >&2; exit 3; }
  # Waits for another apt/dpkg (up to 5 min) instead of failing on its lock.
  if ! { apt-get -o DPkg::Lock::Timeout=300 update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }; then
    echo "slurm_ci.sh: apt-get could not install slurmctld slurmd slurm-client munge" >&2
    exit 3
  fi
}

write_conf() {
  local host cpus memory_mb
  host=$(hostname -s)
  cpus=$(nproc)
  memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  mkdir -p "$state_dir/ctld" "$state_dir/spool"
  cat > "$conf.tmp" <<EOF
ClusterName=grok_tf_ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$state_dir/ctld
SlurmdSpoolDir=$state_dir/spool
SlurmctldPidFile=$state_dir/slurmctld.pid
SlurmdPidFile=$state_dir/slurmd.pid
SlurmctldLogFile=$state_dir/slurmctld.log
SlurmdLogFile=$state_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state_dir/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=bf_interval=1,sched_interval=2
JobRequeue=1
ReturnToService=2
MinJobAge=300
KillWait=10
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=20
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  mv "$conf.tmp" "$conf"
}

munge_works() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  [[ $(id -u) -eq 0 ]] || die "starting slurmctld/slurmd needs root"
  install_slurm
  mkdir -p "$state_dir"
  if ! munge_works; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$state_dir/munged.pid"  # ours: stop it again
  fi
  write_conf
  export SLURM_CONF="$conf"
  alive "$state_dir/slurmctld.pid" || slurmctld -c -f "$conf"
  alive "$state_dir/slurmd.pid" || slurmd -f "$conf" -N "$(hostname -s)"
  for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$conf"
      return
    fi
    sleep 0.5
  done
  tail -n 5 "$state_dir/slurmctld.log" "$state_dir/slurmd.log" >&2 || true
  die "the node did not become idle within 30 s (logs in $state_dir)"
}

stop() {
  local name pid_file pid
  for name in slurmd slurmctld munged; do
    pid_file="$state_dir/$name.pid"
    [[ -s "$pid_file" ]] || continue
    pid=$(cat "$pid_file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    rm -f "$pid_file"
  done
}

case "$command" in
  start) start ;;
  stop) stop ;;
  *) die "usage: slurm_ci.sh start|stop [STATE_DIR]" ;;
esac
