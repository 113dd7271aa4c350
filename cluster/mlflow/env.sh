# shellcheck shell=bash
# Source me (bash):  source cluster/mlflow/env.sh
#
# Exports MLFLOW_TRACKING_URI for the project-local MLflow tracking server started by
# cluster/mlflow/start.sh (PostgreSQL backend store, proxied artifacts), and
# BENCH_MLFLOW_DIR, its state dir.
#
# Each setting is taken from, in order: the environment (BENCH_MLFLOW_HOST,
# BENCH_MLFLOW_PORT, BENCH_PG_PORT), what start.sh recorded for the running server
# ($BENCH_MLFLOW_DIR/server.conf, removed by stop.sh), the defaults (127.0.0.1, 5055, 55432).
# So a shell that sources this finds a server started on other ports too.
#
# Also used by start.sh / stop.sh / status.sh to agree on paths and ports (the _bench_*
# variables). No `set -e` etc. here: this file must not change the options of the shell
# that sources it. No secret is read here.

_bench_mlflow_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# State lives in ${BENCH_CLUSTER_DIR:-<repo root>/.cluster}/mlflow (.cluster/ is git-ignored).
export BENCH_MLFLOW_DIR
BENCH_MLFLOW_DIR=$(realpath -m "${BENCH_CLUSTER_DIR:-$_bench_mlflow_here/../../.cluster}/mlflow")
_bench_repo_root=$(realpath -m "$_bench_mlflow_here/../..")

_bench_mlflow_host="" _bench_mlflow_port="" _bench_pg_port=""
if [[ -r $BENCH_MLFLOW_DIR/server.conf ]]; then
  while IFS='=' read -r _bench_k _bench_v; do
    case $_bench_k in
      mlflow_host) _bench_mlflow_host=$_bench_v ;;
      mlflow_port) _bench_mlflow_port=$_bench_v ;;
      pg_port) _bench_pg_port=$_bench_v ;;
    esac
  done <"$BENCH_MLFLOW_DIR/server.conf"
  unset _bench_k _bench_v
fi
_bench_mlflow_host=${BENCH_MLFLOW_HOST:-${_bench_mlflow_host:-127.0.0.1}}
_bench_mlflow_port=${BENCH_MLFLOW_PORT:-${_bench_mlflow_port:-5055}}
_bench_pg_port=${BENCH_PG_PORT:-${_bench_pg_port:-55432}}

# The address clients use: a wildcard bind is reached on loopback; IPv6 goes in brackets.
case $_bench_mlflow_host in
  0.0.0.0 | "") _bench_mlflow_connect=127.0.0.1 ;;
  :: | "[::]") _bench_mlflow_connect="[::1]" ;;
  \[*) _bench_mlflow_connect=$_bench_mlflow_host ;;
  *:*) _bench_mlflow_connect="[$_bench_mlflow_host]" ;;
  *) _bench_mlflow_connect=$_bench_mlflow_host ;;
esac
export MLFLOW_TRACKING_URI="http://$_bench_mlflow_connect:$_bench_mlflow_port"
unset _bench_mlflow_here
