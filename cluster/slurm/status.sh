#!/usr/bin/env bash
# Is the project-local Slurm cluster (cluster/slurm/start.sh) up?
#   exit 0: the daemons run, slurmctld answers and the node can take jobs; prints node state.
#   exit 1: one line saying what is wrong.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
# shellcheck source=../proc.sh source-path=SCRIPTDIR
source "$HERE/../proc.sh"
S=$BENCH_SLURM_DIR

down() { echo "Slurm cluster is DOWN: $*"; exit 1; }

[[ -f $SLURM_CONF ]] || down "no $SLURM_CONF (run cluster/slurm/start.sh)"
# Local checks first: they are instant, while sinfo against a dead slurmctld retries for
# seconds, and a just-killed slurmd still looks idle to slurmctld for SlurmdTimeout.
for d in munged:$S/munge/munged.pid slurmctld:$S/run/slurmctld.pid; do
  pid_alive "${d%%:*}" "${d#*:}" || down "${d%%:*} is not running (run cluster/slurm/start.sh)"
done
# One slurmd per node: slurmd.pid (one node) or slurmd.nodeK.pid (start.sh --nodes N).
want=$(cat "$S/nodes" 2>/dev/null || echo 1) alive=0
for f in "$S"/run/slurmd.pid "$S"/run/slurmd.*.pid; do
  pid_alive slurmd "$f" && alive=$((alive + 1))
done
((alive == want)) || down "$alive of $want slurmd running (run cluster/slurm/start.sh)"
nodes=$(timeout 10 sinfo -h -N -o '%N %T %C %E' 2>&1) ||
  down "slurmctld does not answer: ${nodes//$'\n'/ }"

usable=1
while read -r node state cpus reason; do
  [[ $reason == none ]] && reason=""
  # %C = CPUs allocated/idle/other/total
  echo "node $node: $state (CPUs A/I/O/T $cpus)${reason:+, reason: $reason}"
  [[ $state =~ ^(idle|mixed|allocated|completing|planned)$ ]] || usable=0
done <<<"$nodes"
((usable)) || down "node not usable (state above)"
echo "Slurm cluster is up: $(wc -l <<<"$nodes") node(s) usable"
