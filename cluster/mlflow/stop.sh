#!/usr/bin/env bash
# Stop the MLflow tracking server and its private PostgreSQL cluster started by
# cluster/mlflow/start.sh: the server first (TERM to its process group, KILL after 10 s),
# then PostgreSQL with `pg_ctl stop -m fast`. Only processes named by the pid files in our
# state dir are touched. Data (pgdata/, artifacts/, pg-password) is kept.
# Idempotent: stopping a stopped server is a no-op.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
# shellcheck source=../proc.sh source-path=SCRIPTDIR
source "$HERE/../proc.sh"
S=$BENCH_MLFLOW_DIR
PIDFILE=$S/mlflow.pid

if [[ ! -d $S ]]; then
  echo "MLflow server: nothing to stop (no state dir $S)"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "stop.sh: must run as root (PostgreSQL runs as postgres)" >&2
  exit 1
fi

exec 9>>"$S/.lock"
flock -w 300 9 || { echo "stop.sh: could not get the lock $S/.lock" >&2; exit 1; }

stopped=()
# 1. The MLflow server: it runs in its own session (setsid), so its pid is the group id and
#    the group holds its uvicorn worker too (also when the server itself was killed).
if pgid=$(stop_group "$PIDFILE" mlflow); then
  stopped+=("mlflow server (pid $pgid)")
fi
rm -f "$PIDFILE" "$S/mlflow.sig" "$S/server.conf"

# 2. PostgreSQL.
if [[ -e $S/pgdata ]]; then
  PGDATA=$(realpath "$S/pgdata")
  if pid_alive postgres "$PGDATA/postmaster.pid"; then
    pgver=$(<"$PGDATA/PG_VERSION")
    (cd / && runuser -u postgres -- "/usr/lib/postgresql/$pgver/bin/pg_ctl" -D "$PGDATA" \
      -m fast -w -t 60 stop >/dev/null) || {
      echo "stop.sh: pg_ctl stop failed" >&2
      exit 1
    }
    stopped+=("PostgreSQL $pgver")
  fi
fi

if ((${#stopped[@]})); then
  echo "MLflow server stopped: ${stopped[*]}"
else
  echo "MLflow server: nothing to stop (nothing running)"
fi
