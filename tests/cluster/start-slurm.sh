#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the `cluster` tests: munged, MariaDB, slurmdbd,
# slurmctld and slurmd, each started here with its files (config, state, logs, pid) under DIR, on
# free local ports, and its pid appended to DIR/pids so stop-slurm.sh stops exactly these.
#   tests/cluster/start-slurm.sh DIR      (root; installs the Debian packages when missing)
# Prints `export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH`; exits non-zero with the reason on
# stderr when a daemon does not come up. The node declares 16 CPUs, 32 GB and two GPUs (config_overrides;
# the GPUs are GRES on stand-in device files) so jobs sized for a real GPU node are accepted; the jobs
# themselves run on this machine's CPU.
set -euo pipefail
D=$(realpath -m "${1:?usage: start-slurm.sh DIR}")
mkdir -p "$D"/{state,spool,mysql}
: >"$D/pids"
fail() { echo "start-slurm: $*" >&2; exit 1; }

packages=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
if ! command -v slurmctld slurmd slurmdbd sbatch munged mariadbd >/dev/null; then
  command -v apt-get >/dev/null || fail "Slurm is not installed and there is no apt-get; install ${packages[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}") \
    >"$D/apt.log" 2>&1 || fail "apt-get install ${packages[*]} failed (see $D/apt.log)"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND until it succeeds
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 2))); do timeout 5 "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "$what did not come up within ${t}s"
}
started() { echo "$1" >>"$D/pids"; }
HOST=$(hostname -s)
CTLD_PORT=$(free_port) SLURMD_PORT=$(free_port) DBD_PORT=$(free_port) DB_PORT=$(free_port)

# munge: its own key and socket, so a system munged (if any) is neither needed nor touched; Slurm's
# clients reach slurmctld through AuthInfo's socket and slurmdbd through AccountingStoragePass's
dd if=/dev/urandom of="$D/munge.key" bs=1024 count=1 status=none
chmod 600 "$D/munge.key"
munged --force --key-file="$D/munge.key" --socket="$D/munge.sock" --pid-file="$D/munged.pid" \
  --log-file="$D/munged.log" --seed-file="$D/munged.seed" || fail "munged failed (see $D/munged.log)"
wait_for 10 munged test -s "$D/munged.pid"
started "$(cat "$D/munged.pid")"

# MariaDB for slurmdbd, on a private data dir and TCP port
mariadb-install-db --no-defaults --datadir="$D/mysql" --user=root --auth-root-authentication-method=socket \
  >"$D/mysql-install.log" 2>&1 || fail "mariadb-install-db failed (see $D/mysql-install.log)"
mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/mysql.sock" --port="$DB_PORT" \
  --bind-address=127.0.0.1 --pid-file="$D/mysql.pid" --log-error="$D/mysql.log" &
started $!
wait_for 60 MariaDB mariadb --no-defaults --socket="$D/mysql.sock" -uroot -e "select 1"
mariadb --no-defaults --socket="$D/mysql.sock" -uroot -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

cat >"$D/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$D/munge.sock
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$D/slurmdbd.pid
LogFile=$D/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CONF
chmod 600 "$D/slurmdbd.conf"

cat >"$D/slurm.conf" <<CONF
ClusterName=robustmvc
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$D/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$D/munge.sock
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=16 RealMemory=32000 Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
touch "$D"/gpu{0,1}   # stand-ins for /dev/nvidia0-1: Slurm only counts and hands out the files
echo "NodeName=$HOST Name=gpu File=$D/gpu[0-1]" >"$D/gres.conf"
export SLURM_CONF="$D/slurm.conf"

slurmdbd -D >"$D/slurmdbd.out" 2>&1 &
started $!
wait_for 60 slurmdbd sacctmgr -n list cluster
sacctmgr -i add cluster robustmvc >/dev/null
sacctmgr -i add account robustmvc Description=tests Organization=tests >/dev/null
sacctmgr -i add user root Account=robustmvc >/dev/null

slurmctld -D -i >"$D/slurmctld.out" 2>&1 &
started $!
slurmd -D -N "$HOST" >"$D/slurmd.out" 2>&1 &
started $!
wait_for 60 "the node (idle in sinfo)" bash -c "sinfo -h -N -o %t | grep -qx idle"
wait_for 30 sacct sacct -n -X
# snakemake's slurm jobstep drops every SLURM_* variable (SLURM_CONF too) before its srun; a real
# cluster's clients find /etc/slurm/slurm.conf, this one's find theirs through these wrappers on PATH
mkdir -p "$D/bin"
for tool in srun sbatch squeue sacct scancel sinfo; do
  printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$D/slurm.conf" "$(command -v $tool)" >"$D/bin/$tool"
  chmod +x "$D/bin/$tool"
done
echo "export SLURM_CONF=$D/slurm.conf PATH=$D/bin:\$PATH"
