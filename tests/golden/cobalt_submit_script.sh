#!/bin/bash -el
#COBALT -t 30
#COBALT -n 2
#COBALT -q debug-cache-quad
#COBALT -A MyProject
#COBALT --attrs mcdram=cache:numa=quad
#COBALT -O @SCRIPT_DIR@/parsl.parsl.htex.block-0.1700000000.0
#COBALT --env KMP_AFFINITY=disabled

module load miniconda-3
source activate /projects/MyProject/env

echo "Starting Cobalt job script"
echo "----Cobalt partition: ${COBALT_PARTNAME:-} (${COBALT_JOBSIZE:-?} nodes)----"
[[ -n "${COBALT_NODEFILE:-}" ]] && cat "$COBALT_NODEFILE"
echo "--------------------------"

export JOBNAME="parsl.parsl.htex.block-0.1700000000.0"

set -e
WORKERCOUNT=2
SCRIPT_DIR="@SCRIPT_DIR@"
[[ -d $SCRIPT_DIR ]] || SCRIPT_DIR=""

cat << APRUN_EOF > ${SCRIPT_DIR:+$SCRIPT_DIR/}cmd_$JOBNAME.sh
process_worker_pool.py --debug --max_workers_per_node=64 -a 10.236.1.195 -p 0 -c 1.0 -m None --poll 10 --task_port=54321 --result_port=54322 --logdir=/lus/theta-fs0/projects/MyProject/runinfo/000/htex --block_id=0 --hb_period=30 --hb_threshold=120
APRUN_EOF
chmod a+x ${SCRIPT_DIR:+$SCRIPT_DIR/}cmd_$JOBNAME.sh

aprun -n 2 -N 1  /bin/bash ${SCRIPT_DIR:+$SCRIPT_DIR/}cmd_$JOBNAME.sh &
wait

[[ "1" == "1" ]] && echo "Done"


echo "End of Cobalt job"
