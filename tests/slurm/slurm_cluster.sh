#!/usr/bin/env bash
# A real single-node Slurm on this machine, for the Slurm tests and examples.
#
#   slurm_cluster.sh install   apt-get install slurm-wlm munge (as root)
#   slurm_cluster.sh start     write the munge key and slurm.conf, start munged,
#                              slurmctld and slurmd; wait until the node is idle
#   slurm_cluster.sh stop      stop the daemons started by `start`
#   slurm_cluster.sh status    sinfo
#
# Needs root.  Everything it writes lives in /etc/slurm/slurm.conf,
# /etc/munge/munge.key, /var/spool/stasis-slurm, /var/log/stasis-slurm and
# /run/munge; the daemons' pids are in /var/spool/stasis-slurm/*.pid.
# Exits non-zero with the daemons' log tail if the node does not become idle
# within 60 s.
set -euo pipefail

STATE=/var/spool/stasis-slurm
LOGS=/var/log/stasis-slurm
CONF=/etc/slurm/slurm.conf

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get install -y --no-install-recommends slurm-wlm munge
  fi
}

write_config() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  # RealMemory in MiB, a little under the total so slurmd does not drain the node.
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
  cat > "$CONF" <<CONF
# Written by tests/slurm/slurm_cluster.sh: one node, root daemons, no cgroups.
ClusterName=stasis-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job may start again once its old credential expired (default
# 120 s): 10 s keeps the requeue tests short.
AuthInfo=cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobRequeue=1
MinJobAge=600
KillWait=10
OverTimeLimit=0
InactiveLimit=0
Waittime=0
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  # An empty cgroup.conf (left by an earlier version of this script) makes slurmd complain.
  if [ -e /etc/slurm/cgroup.conf ] && [ ! -s /etc/slurm/cgroup.conf ]; then rm -f /etc/slurm/cgroup.conf; fi
}

start_munge() {
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null; then mungekey --create --force --keyfile /etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  if ! munge -n </dev/null >/dev/null 2>&1; then
    if id munge >/dev/null 2>&1; then
      runuser -u munge -- /usr/sbin/munged --force
    else
      /usr/sbin/munged --force
    fi
    touch "$STATE/munged.ours"
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null >/dev/null 2>&1 || die "munged does not answer (see /var/log/munge/munged.log)"
  fi
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  [ "$(id -u)" -eq 0 ] || die "needs root"
  command -v slurmctld >/dev/null || die "slurmctld not installed (run: $0 install)"
  write_config
  mkdir -p "$STATE"
  start_munge
  alive "$STATE/slurmctld.pid" || slurmctld -c -i   # -c: clear old state; daemonizes
  alive "$STATE/slurmd.pid" || slurmd
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -o %t 2>/dev/null | head -1 || true)
    case "$state" in idle|mix|alloc) echo "slurm_cluster.sh: node $(hostname -s) is $state"; return 0 ;; esac
    # A node left down/drained by an earlier run: bring it back.
    case "$state" in down*|drain*|drng*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;; esac
    sleep 0.5
  done
  echo "slurm_cluster.sh: node state '${state}' after 60 s; log tails:" >&2
  tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for d in slurmd slurmctld; do
    local pidfile="$STATE/$d.pid"
    if alive "$pidfile"; then
      local pid; pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # munged only if `start` started it (not one of the system's).
  if [ -e "$STATE/munged.ours" ] && [ -s /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$STATE/munged.ours"
  fi
}

case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) die "usage: $0 install|start|stop|status" ;;
esac
