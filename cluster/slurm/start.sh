#!/usr/bin/env bash
# Start (or make sure is running) a real Slurm cluster built from Debian's packages, with
# all state under ${BENCH_CLUSTER_DIR:-<repo>/.cluster}/slurm.
#
#   cluster/slurm/start.sh                 # no accounting (or keep the running cluster's mode)
#   cluster/slurm/start.sh --accounting    # + private MariaDB + slurmdbd, so `sacct` works
#   cluster/slurm/start.sh --no-accounting # switch an accounting cluster back to plain
#   cluster/slurm/start.sh --nodes 4       # node1..node4 (1, the default: one node, the host)
#
# With --nodes N > 1 each node is a slurmd in its own UTS and mount namespaces (its own
# hostname nodeK and its own tmpfs on /dev/shm), all on 127.0.0.1, each on its own port.
# The node count is kept while the cluster lives, as the accounting mode is.
# Idempotent: when everything is already up it only checks (well under 1 s) and changes
# nothing. Dead daemons with stale pid files are restarted; a changed slurm.conf (e.g. a
# different CPU count, or switching accounting on/off) restarts the Slurm daemons.
# Needs root (installs packages, runs munged as the `munge` user, slurm*d as root).
# Prints one "up" line plus the `export SLURM_CONF=...` line clients need.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
# shellcheck source=../proc.sh source-path=SCRIPTDIR
source "$HERE/../proc.sh"
S=$BENCH_SLURM_DIR

CLUSTER_NAME=bench
PARTITION=debug
READY_TIMEOUT=${BENCH_SLURM_READY_TIMEOUT:-60} # seconds to wait for the node to be usable

want_acct="" want_nodes=""
MAX_NODES=16
while (($#)); do
  case $1 in
    --accounting) want_acct=1 ;;
    --no-accounting) want_acct=0 ;;
    --nodes) want_nodes=${2:-(nothing)}; shift $(($# > 1 ? 1 : 0)) ;;
    --nodes=*) want_nodes=${1#--nodes=} ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "start.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n $want_nodes ]]; then
  if ! [[ $want_nodes =~ ^[0-9]{1,3}$ ]] || ((10#$want_nodes < 1 || 10#$want_nodes > MAX_NODES)); then
    echo "start.sh: --nodes takes a whole number from 1 to $MAX_NODES (this host holds" \
      "at most $MAX_NODES node daemons), not '$want_nodes'" >&2
    exit 2
  fi
  want_nodes=$((10#$want_nodes))
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "start.sh: must run as root (it installs packages and starts munged/slurmctld/slurmd)" >&2
  exit 1
fi

ETC=$S/etc RUN=$S/run LOG=$S/log MUNGE=$S/munge
MUNGE_SOCK=$MUNGE/munged.sock
MYSQL_SOCK=$RUN/mysqld.sock
mkdir -p "$ETC" "$RUN" "$LOG" "$S/state" "$S/spool"

# One start/stop at a time (e.g. parallel pytest workers). Every daemon below is started
# with `9>&-`: munged keeps inherited fds, and holding this lock would hang the next call.
exec 9>>"$S/.lock"
flock -w 300 9 || { echo "start.sh: could not get the lock $S/.lock" >&2; exit 1; }

# Accounting mode is sticky while the cluster lives (stop.sh removes the marker), so a plain
# `start.sh` from a test does not tear down a cluster started with --accounting.
if [[ -z $want_acct ]]; then
  if [[ -e $S/accounting ]]; then want_acct=1; else want_acct=0; fi
fi
# So is the node count.
if [[ -z $want_nodes ]]; then
  want_nodes=$(cat "$S/nodes" 2>/dev/null || echo 1)
fi
NODES=$want_nodes

log() { echo "start.sh: $*" >&2; }

# stop_daemon NAME PIDFILE: TERM, wait up to 10 s, then KILL; removes the pid file.
stop_daemon() {
  if pid_alive "$1" "$2"; then
    local pid i
    pid=$(<"$2")
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$2"
}

# fail MSG: print MSG plus the tails of the logs, then exit 1.
fail() {
  echo "start.sh: ERROR: $*" >&2
  local f
  for f in "$MUNGE/munged.log" "$LOG"/*.log; do
    [[ -s $f ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 15 "$f" >&2
  done
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.1 s until it succeeds, or
# fail after SECONDS (wall clock; wrap slow commands in `timeout`).
wait_for() {
  local secs=$1 what=$2 deadline=$((SECONDS + $1 + 1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

# --- 1. Debian packages (install only what is missing) ----------------------------------
pkgs=(slurmctld slurmd slurm-client munge)
((want_acct)) && pkgs+=(slurmdbd mariadb-server)
mapfile -t installed < <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${pkgs[@]}" 2>/dev/null |
  awk '$1 == "installed" {print $2}')
missing=()
for p in "${pkgs[@]}"; do
  [[ " ${installed[*]} " == *" $p "* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} (log: $LOG/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOG/apt.log" 2>&1; }
  # `apt-get update` only when the install needs it (no package lists yet, or it failed).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! apt_install; then
    apt-get update >>"$LOG/apt.log" 2>&1 || fail "apt-get update failed (see $LOG/apt.log)"
    apt_install || { tail -n 20 "$LOG/apt.log" >&2; fail "apt-get install ${missing[*]} failed"; }
  fi
fi

# --- 2. Configuration (rewritten only when its content changes) --------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory a bit (5 %) below the total, or slurmd would drain the node for "Low RealMemory".
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
# One node: the host itself, as always. N nodes: node1..nodeN, each a slurmd of its own on
# 127.0.0.1 and its own port (6831, 6832, ...), sharing the host's cores (each says all
# of them) and its memory (each says its share). %n is the node's name in the paths.
SLURMD_PORT=6818
if ((NODES == 1)); then
  NODE_NAMES=("$HOST") NODE_LIST=$HOST node_suffix=""
  node_lines="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN"
else
  NODE_NAMES=() node_lines="" node_suffix=".%n"
  for ((k = 1; k <= NODES; k++)); do
    NODE_NAMES+=("node$k")
    node_lines+="NodeName=node$k NodeHostname=node$k NodeAddr=127.0.0.1 Port=$((6830 + k)) CPUs=$CPUS RealMemory=$((MEM_MB / NODES)) State=UNKNOWN"$'\n'
  done
  node_lines=${node_lines%$'\n'}
  NODE_LIST="node[1-$NODES]"
fi
# One node: a node that was DOWN comes back as soon as its slurmd registers. Several
# nodes: only a node that stopped responding does; one set DOWN (a failure, an admin)
# stays out until resumed, as on a production machine, so a lost node is seen as lost.
if ((NODES == 1)); then
  return_to_service="ReturnToService=2" min_job_age=30
else
  return_to_service="ReturnToService=1" min_job_age=300
fi
if ((${#MUNGE_SOCK} > 100)); then
  fail "state dir path too long for a unix socket ($MUNGE_SOCK); set BENCH_CLUSTER_DIR shorter"
fi

if ((want_acct)); then
  acct_conf="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# Clients (sacct, sacctmgr, slurmctld) reach slurmdbd through the munge socket named here,
# NOT AuthInfo's: without it they try /run/munge/munge.socket.2.
AccountingStoragePass=$MUNGE_SOCK
JobAcctGatherType=jobacct_gather/linux"
else
  # 22.05 has no file-based accounting storage: without slurmdbd, `sacct` does not work.
  acct_conf="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

slurm_conf="# Generated by cluster/slurm/start.sh -- edits are overwritten.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our private munged socket; clients read it from here too, so no /run/munge is needed.
AuthInfo=socket=$MUNGE_SOCK
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool$node_suffix
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd$node_suffix.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd$node_suffix.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups (no systemd here): plain /proc process tracking, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Without pmi2, \`srun -n 2 python -m mpi4py...\` gives two rank-0 singletons.
MpiDefault=pmi2
MailProg=/bin/true
$return_to_service
# Responsive scheduling for tests. Batch jobs still start up to ~1 s after sbatch: 22.05
# only flags a scheduler pass at submit, and the background loop picks it up once a second.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,sched_min_interval=0,bf_interval=1
MessageTimeout=5
KillWait=2
InactiveLimit=0
OverTimeLimit=0
# Finished jobs leave squeue at once; \`scontrol show job\` still knows them for MinJobAge s
# (several nodes: 300 s, so a block lost with its node is still explained when the lost
# worker is noticed).
MinJobAge=$min_job_age
SlurmdTimeout=30
JobCompType=jobcomp/none
$acct_conf
$node_lines
PartitionName=$PARTITION Nodes=$NODE_LIST Default=YES MaxTime=INFINITE State=UP
"

dbd_conf="# Generated by cluster/slurm/start.sh -- edits are overwritten.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
# Private MariaDB over its unix socket (MYSQL_UNIX_PORT); root authenticates by unix_socket.
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
"

config_changed=0
# write_if_changed FILE CONTENT MODE
write_if_changed() {
  if [[ ! -f $1 ]] || [[ $(<"$1") != "${2%$'\n'}" ]]; then
    printf '%s' "$2" >"$1.tmp"
    chmod "$3" "$1.tmp"
    mv -f "$1.tmp" "$1"
    config_changed=1
  fi
}

# node_pidfile NAME: the pid file of a node's slurmd (SlurmdPidFile with %n filled in).
node_pidfile() { if ((NODES == 1)); then echo "$RUN/slurmd.pid"; else echo "$RUN/slurmd.$1.pid"; fi; }
# all_slurmd_alive: every node of this config has its slurmd.
all_slurmd_alive() {
  local n
  for n in "${NODE_NAMES[@]}"; do pid_alive slurmd "$(node_pidfile "$n")" || return 1; done
}
# slurmd_pidfiles: the pid files of every slurmd started here, of this config or an earlier
# one with another node count.
slurmd_pidfiles() { compgen -G "$RUN/slurmd.pid"; compgen -G "$RUN/slurmd.*.pid"; true; }
any_slurmd_alive() {
  local f
  for f in $(slurmd_pidfiles); do pid_alive slurmd "$f" && return 0; done
  return 1
}
stop_slurmds() {
  local f
  for f in $(slurmd_pidfiles); do stop_daemon slurmd "$f"; done
}

slurm_up() {
  pid_alive munged "$MUNGE/munged.pid" && pid_alive slurmctld "$RUN/slurmctld.pid" &&
    all_slurmd_alive || return 1
  if ((want_acct)); then
    pid_alive mariadbd "$RUN/mariadbd.pid" && pid_alive slurmdbd "$RUN/slurmdbd.pid" || return 1
  else
    ! pid_alive slurmdbd "$RUN/slurmdbd.pid" || return 1
  fi
  node_usable
}

# node_usable: slurmctld answers and every node can run jobs (not down/drained/not
# responding).
node_usable() {
  local st line n=0
  st=$(timeout 10 sinfo -h -N -n "$NODE_LIST" -o %T 2>/dev/null) || return 1
  while read -r line; do
    [[ $line =~ ^(idle|mixed|allocated|completing|planned)$ ]] || return 1
    n=$((n + 1))
  done <<<"$st"
  ((n == NODES))
}

report_up() {
  local what="node $HOST ($CPUS CPUs)"
  ((NODES > 1)) && what="$NODES nodes $NODE_LIST ($CPUS CPUs each, sharing this host's)"
  echo "Slurm cluster '$CLUSTER_NAME' is up: $what, partition $PARTITION$(
    ((want_acct)) && echo ', accounting on'), state in $S"
  echo "export SLURM_CONF=$SLURM_CONF"
}

# --- Fast path: nothing to do ------------------------------------------------------------
write_if_changed "$ETC/slurm.conf" "$slurm_conf" 644
((want_acct)) && write_if_changed "$ETC/slurmdbd.conf" "$dbd_conf" 600
nodes_changed=0
[[ $(cat "$S/nodes" 2>/dev/null || echo 1) == "$NODES" ]] || nodes_changed=1
if ((!config_changed)) && slurm_up; then
  report_up
  exit 0
fi

# --- 3. munged (as the munge user; key, socket, pid, log, seed all in $MUNGE) -------------
install -d -o munge -g munge -m 0755 "$MUNGE"
if [[ ! -s $MUNGE/munge.key ]]; then
  log "generating munge key"
  (umask 077 && head -c 1024 /dev/urandom >"$MUNGE/munge.key.tmp")
  chown munge:munge "$MUNGE/munge.key.tmp"
  chmod 0400 "$MUNGE/munge.key.tmp"
  mv -f "$MUNGE/munge.key.tmp" "$MUNGE/munge.key"
fi
munge_ok() { munge -n -S "$MUNGE_SOCK" </dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null; }
if ! pid_alive munged "$MUNGE/munged.pid"; then
  rm -f "$MUNGE/munged.pid" "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
  log "starting munged"
  runuser -u munge -- munged --socket="$MUNGE_SOCK" --key-file="$MUNGE/munge.key" \
    --log-file="$MUNGE/munged.log" --pid-file="$MUNGE/munged.pid" \
    --seed-file="$MUNGE/munged.seed" 9>&- || fail "munged did not start"
fi
wait_for 10 "munged to answer on $MUNGE_SOCK" munge_ok

# Fixed ports (6817-6819): a daemon of another state dir (or the system's) would answer
# our clients and look like success, so refuse to start next to one.
port_free() { [[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# --- 4. Accounting: private MariaDB + slurmdbd (only with --accounting) -----------------
export MYSQL_UNIX_PORT=$MYSQL_SOCK # libmariadb (used by slurmdbd) connects to this socket
fresh_db=0
if ((want_acct)); then
  touch "$S/accounting"
  if ! pid_alive mariadbd "$RUN/mariadbd.pid"; then
    rm -f "$RUN/mariadbd.pid" "$MYSQL_SOCK"
    if [[ ! -d $S/mysql/mysql ]]; then
      log "initialising MariaDB datadir $S/mysql"
      fresh_db=1
      rm -rf "$S/mysql"
      mariadb-install-db --no-defaults --user=root --datadir="$S/mysql" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
        fail "mariadb-install-db failed (see $LOG/mariadb-install.log)"
    fi
    log "starting MariaDB"
    setsid -f mariadbd --no-defaults --user=root --datadir="$S/mysql" --socket="$MYSQL_SOCK" \
      --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" --skip-networking \
      --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >>"$LOG/mariadb.log" 2>&1 9>&-
  fi
  wait_for 60 "MariaDB on $MYSQL_SOCK" mariadb-admin --no-defaults --socket="$MYSQL_SOCK" ping
  if ((config_changed)); then stop_daemon slurmdbd "$RUN/slurmdbd.pid"; fi
  if ! pid_alive slurmdbd "$RUN/slurmdbd.pid"; then
    port_free 6819 || fail "port 6819 is taken by another slurmdbd (another BENCH_CLUSTER_DIR?)"
    rm -f "$RUN/slurmdbd.pid"
    log "starting slurmdbd"
    slurmdbd 9>&- || fail "slurmdbd did not start"
  fi
  wait_for 30 "slurmdbd to answer" timeout 10 sacctmgr -n list cluster
  if [[ -z $(sacctmgr -n -P list cluster format=cluster where cluster="$CLUSTER_NAME") ]]; then
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null || fail "sacctmgr add cluster failed"
  fi
else
  rm -f "$S/accounting"
  stop_daemon slurmdbd "$RUN/slurmdbd.pid"
  stop_daemon mariadbd "$RUN/mariadbd.pid"
fi

# --- 5. slurmctld + slurmd -----------------------------------------------------------------
clear_state=()
ctld_up=0 slurmd_up=0
pid_alive slurmctld "$RUN/slurmctld.pid" && ctld_up=1
any_slurmd_alive && slurmd_up=1
if ((fresh_db)); then
  # A new, empty accounting DB: jobs in slurmctld's saved state may carry record ids of an
  # earlier DB, and their updates then jam its queue to slurmdbd (no job ever shows up in
  # sacct). Start the controller from an empty state.
  stop_slurmds
  stop_daemon slurmctld "$RUN/slurmctld.pid"
  find "$S/state" -mindepth 1 -delete
  rm -f "$S"/spool*/cred_state*
elif ((nodes_changed)); then
  # Other nodes: the saved jobs and node states name nodes that no longer exist.
  stop_slurmds
  stop_daemon slurmctld "$RUN/slurmctld.pid"
  clear_state=(-c)
  rm -f "$S"/spool*/cred_state*
elif ((ctld_up && slurmd_up)); then
  if ((config_changed)) || ! all_slurmd_alive; then
    # Our own restart for a new config: a clean shutdown saves the jobs, so keep them.
    stop_slurmds
    stop_daemon slurmctld "$RUN/slurmctld.pid"
  fi
elif ((ctld_up || slurmd_up)) || [[ -e $RUN/slurmctld.pid || -n $(slurmd_pidfiles) ]]; then
  # A crash, reboot or kill (stale pid files; stop.sh removes them): restart both from a
  # clean slate (slurmctld -c). Recovering is worse for a test cluster: jobs that ended
  # after the last state save come back "running", and jobs left completing on a dead
  # slurmd block the node for ~30 s. (A clean stop.sh/start.sh keeps the state, so the
  # job ids go on and slurmdbd gets every job record.)
  stop_slurmds
  stop_daemon slurmctld "$RUN/slurmctld.pid"
  clear_state=(-c)
  # Also slurmd's cred_state: it remembers revoked job ids, and a fresh slurmctld may
  # hand out the same ids again ("Job credential revoked").
  rm -f "$S"/spool*/cred_state*
fi
if ! pid_alive slurmctld "$RUN/slurmctld.pid"; then
  port_free 6817 || fail "port 6817 is taken by another slurmctld (another BENCH_CLUSTER_DIR?)"
  rm -f "$RUN/slurmctld.pid"
  log "starting slurmctld${clear_state:+ (clean state)}"
  slurmctld "${clear_state[@]}" -f "$SLURM_CONF" 9>&- || fail "slurmctld did not start"
fi
ctld_answers() { pid_alive slurmctld "$RUN/slurmctld.pid" && timeout 10 scontrol ping; }
wait_for 30 "slurmctld to answer (scontrol ping)" ctld_answers
echo "$NODES" >"$S/nodes"
if ((NODES == 1)); then
  if ! pid_alive slurmd "$RUN/slurmd.pid"; then
    port_free 6818 || fail "port 6818 is taken by another slurmd (another BENCH_CLUSTER_DIR?)"
    rm -f "$RUN/slurmd.pid"
    log "starting slurmd"
    slurmd -f "$SLURM_CONF" 9>&- || fail "slurmd did not start"
  fi
else
  # Each node in new UTS and mount namespaces (private propagation: its mounts stay its
  # own): hostname nodeK and a tmpfs of its own on /dev/shm. slurmd forks into the
  # background inside them, and its job steps inherit them. The namespaces go away with
  # the last process in them, so stop.sh leaves no mount behind.
  for ((k = 1; k <= NODES; k++)); do
    n=node$k
    pid_alive slurmd "$(node_pidfile "$n")" && continue
    port_free $((6830 + k)) || fail "port $((6830 + k)) (slurmd of $n) is taken by another process"
    rm -f "$(node_pidfile "$n")"
    mkdir -p "$S/spool.$n"
    log "starting slurmd of $n (port $((6830 + k)))"
    unshare -u -m --propagation private sh -c 'hostname "$1" &&
      mount -t tmpfs -o mode=1777 "shm-$1" /dev/shm && exec slurmd -N "$1" -f "$2"' \
      sh "$n" "$SLURM_CONF" 9>&- || fail "slurmd of $n did not start"
  done
fi

# --- 6. Wait until the node is usable and a job step really runs -------------------------
deadline=$((SECONDS + READY_TIMEOUT))
tries=0
until node_usable || ((SECONDS >= deadline)); do
  # A node left DOWN/DRAINED by an earlier failure: resume it once slurmd is back.
  if ((tries++ % 20 == 0)); then
    while read -r n st; do
      [[ $st =~ ^(down|drain) ]] && scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1
    done < <(sinfo -h -N -n "$NODE_LIST" -o '%N %T' 2>/dev/null || true)
  fi
  sleep 0.1
done
node_usable || fail "nodes $NODE_LIST not usable after ${READY_TIMEOUT}s: $(sinfo -h -N -o '%N %T %E' 2>&1)"
# Retried: right after a crash restart, a new job can get the id of an orphan job that
# slurmctld -c is killing at that moment ("Job credential revoked"); the next id works.
until err=$(timeout 30 srun -N"$NODES" -n"$NODES" -t 1 --quiet true 2>&1); do
  ((SECONDS < deadline)) || fail "'srun -N$NODES true' did not work within ${READY_TIMEOUT}s: $err"
  sleep 0.2
done

report_up
