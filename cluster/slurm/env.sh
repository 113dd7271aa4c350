# shellcheck shell=bash
# Source me (bash):  source cluster/slurm/env.sh
#
# Points the Slurm client commands (sinfo, srun, sbatch, squeue, scancel, sacct, ...)
# at the project-local cluster started by cluster/slurm/start.sh. Nothing in /etc/slurm
# is needed: every client honours SLURM_CONF, and the munge socket path travels inside
# slurm.conf (AuthInfo=socket=...), so SLURM_CONF is the only variable clients need.
#
# Also used by start.sh / stop.sh / status.sh to agree on the paths. No `set -e` etc.
# here: this file must not change the options of the shell that sources it.

_bench_slurm_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# State lives in ${BENCH_CLUSTER_DIR:-<repo root>/.cluster}/slurm (.cluster/ is git-ignored).
_bench_cluster_dir=${BENCH_CLUSTER_DIR:-$_bench_slurm_here/../../.cluster}
export BENCH_SLURM_DIR
BENCH_SLURM_DIR=$(realpath -m "$_bench_cluster_dir/slurm")
export SLURM_CONF="$BENCH_SLURM_DIR/etc/slurm.conf"
unset _bench_slurm_here _bench_cluster_dir
