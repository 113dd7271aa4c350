#!/usr/bin/env bash
# Is the project-local MLflow tracking server (cluster/mlflow/start.sh) up?
#   exit 0: it answers GET /health and its PostgreSQL accepts connections; one line.
#   exit 1: one line saying what is wrong.
# Needs no root and reads no secret.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
S=$BENCH_MLFLOW_DIR

down() { echo "MLflow server is DOWN: $*"; exit 1; }

if command -v curl >/dev/null; then
  curl -fsS --noproxy '*' -m 5 -o /dev/null "$MLFLOW_TRACKING_URI/health" 2>/dev/null ||
    down "no answer from $MLFLOW_TRACKING_URI/health (run cluster/mlflow/start.sh)"
else
  python3 -c 'import sys, urllib.request as u
u.urlopen(u.Request(sys.argv[1]), timeout=5)' "$MLFLOW_TRACKING_URI/health" 2>/dev/null ||
    down "no answer from $MLFLOW_TRACKING_URI/health (run cluster/mlflow/start.sh)"
fi
pid=$(cat "$S/mlflow.pid" 2>/dev/null || echo '?')
isready=$(compgen -G '/usr/lib/postgresql/*/bin/pg_isready' | sort -V | tail -n 1 || true)
if [[ -n $isready ]]; then
  "$isready" -q -h 127.0.0.1 -p "$_bench_pg_port" -t 5 ||
    down "$MLFLOW_TRACKING_URI answers, but PostgreSQL on 127.0.0.1:$_bench_pg_port does not"
fi
echo "MLflow server is up: $MLFLOW_TRACKING_URI (pid $pid), PostgreSQL on" \
  "127.0.0.1:$_bench_pg_port, state in $S"
