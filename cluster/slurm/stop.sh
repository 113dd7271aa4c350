#!/usr/bin/env bash
# Stop the project-local Slurm cluster started by cluster/slurm/start.sh.
# Cancels every job first (so nothing is left in the queue), then stops slurmd, slurmctld,
# slurmdbd, MariaDB and munged -- only the daemons whose pid files live in our state dir,
# i.e. the ones start.sh started. Idempotent: stopping a stopped cluster is a no-op.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
# shellcheck source=../proc.sh source-path=SCRIPTDIR
source "$HERE/../proc.sh"
S=$BENCH_SLURM_DIR
RUN=$S/run

if [[ ! -d $S ]]; then
  echo "Slurm cluster: nothing to stop (no state dir $S)"
  exit 0
fi

exec 9>>"$S/.lock"
flock -w 300 9 || { echo "stop.sh: could not get the lock $S/.lock" >&2; exit 1; }

stopped=() pids=()
# term NAME PIDFILE: send TERM if the pid file names a live NAME; remember it for reap.
# A stale pid file (the daemon died on its own) is left in place: it tells start.sh that
# the saved state is not from a clean shutdown, so it starts slurmctld with -c.
term() {
  if pid_alive "$1" "$2"; then
    pids+=("$(<"$2")")
    stopped+=("$1")
    kill -TERM "${pids[-1]}" 2>/dev/null || true
    rm -f "$2"
  fi
}
# reap: wait up to 10 s for the TERMed daemons to exit, then KILL what is left.
reap() {
  local p i alive
  for ((i = 0; i < 100; i++)); do
    alive=0
    for p in "${pids[@]}"; do running "$p" && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do
    if running "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  pids=()
}

# 1. Cancel all jobs while slurmctld and slurmd can still clean them up.
if pid_alive slurmctld "$RUN/slurmctld.pid"; then
  mapfile -t jobs < <(timeout 10 squeue -h -o %A 2>/dev/null || true)
  if ((${#jobs[@]})); then
    timeout 10 scancel "${jobs[@]}" 2>/dev/null || true
    # KillWait=2: the jobs are gone from squeue within a few seconds.
    deadline=$((SECONDS + 15))
    while [[ -n $(timeout 5 squeue -h -o %A 2>/dev/null) ]] && ((SECONDS < deadline)); do
      sleep 0.1
    done
    echo "stop.sh: cancelled ${#jobs[@]} job(s)" >&2
  fi
fi

# our_stepds: slurmstepd processes of this cluster (they write to our slurmd*.log).
our_stepds() {
  local p
  for p in $(pgrep -x slurmstepd || true); do
    if [[ -n $(find "/proc/$p/fd" -lname "$S/log/slurmd*.log" -print -quit 2>/dev/null) ]]; then
      echo "$p"
    fi
  done
}
# kill_tree PID: SIGKILL PID and all its descendants (the job's tasks).
kill_tree() {
  local p stat ppid kids=()
  for p in /proc/[0-9]*; do
    { read -r stat <"$p/stat"; } 2>/dev/null || continue
    ppid=${stat##*) }  # "<state> <ppid> ..."
    ppid=${ppid#* }
    [[ ${ppid%% *} == "$1" ]] && kids+=("${p#/proc/}")
  done
  kill -KILL "$1" 2>/dev/null || true
  for p in "${kids[@]}"; do kill_tree "$p"; done
}
# A step that just ended may still be reporting to slurmctld; stopping slurmctld under it
# leaves a slurmstepd retrying for a minute. Give them up to 5 s, then kill what is left
# (e.g. steps of a job slurmctld could not cancel because it was dead) with their tasks.
deadline=$((SECONDS + 5))
while [[ -n $(our_stepds) ]] && ((SECONDS < deadline)); do
  sleep 0.1
done
for p in $(our_stepds); do
  echo "stop.sh: killing leftover slurmstepd $p and its tasks" >&2
  kill_tree "$p"
done

# 2. Daemons, in parallel where possible; munged last, the others talk through it.
# slurmdbd after slurmctld, which sends it its last job records while shutting down.
# Every node's slurmd (one, or node1..nodeN each in its own namespaces: those namespaces
# and their /dev/shm mounts end with their last process).
for f in "$RUN"/slurmd.pid "$RUN"/slurmd.*.pid; do
  [[ -e $f ]] && term slurmd "$f"
done
term slurmctld "$RUN/slurmctld.pid"
reap
term slurmdbd "$RUN/slurmdbd.pid"
reap
term mariadbd "$RUN/mariadbd.pid"
term munged "$S/munge/munged.pid"
reap
rm -f "$S/nodes" "$S/accounting" "$S/munge/munged.sock" "$RUN/mysqld.sock"

if ((${#stopped[@]})); then
  echo "Slurm cluster stopped (${stopped[*]})"
else
  echo "Slurm cluster: nothing to stop (no daemon running)"
fi
