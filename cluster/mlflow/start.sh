#!/usr/bin/env bash
# Start (or make sure is running) a private PostgreSQL cluster and an MLflow tracking server
# on it, with all state under ${BENCH_CLUSTER_DIR:-<repo>/.cluster}/mlflow:
#
#   pgdata/      PostgreSQL data directory (owned by postgres)
#   pgrun/       its unix socket and postgres.log (owned by postgres, 0700)
#   artifacts/   where the server stores proxied artifacts (mlflow-artifacts:/)
#   pg-password  the `mlflow` role's password (0600); mlflow.pid, mlflow.log, server.conf
#
# If the postgres user cannot reach the state dir (e.g. the repo lives under /root), or the
# socket path would be too long, pgdata/ and pgrun/ are symlinks to
# /var/tmp/bench-mlflow-pg.<hash of the state dir>/ instead: no directory's mode is changed.
#
# Environment: BENCH_PG_PORT (55432), BENCH_PG_PASSWORD (else generated once and kept in
# pg-password), BENCH_MLFLOW_HOST (127.0.0.1), BENCH_MLFLOW_PORT (5055), BENCH_PYTHON (the
# Python whose sibling `mlflow` runs the server; default <repo>/.venv/bin/python),
# BENCH_MLFLOW_READY_TIMEOUT (60 s), MLFLOW_SQLALCHEMYSTORE_POOL_SIZE / _MAX_OVERFLOW (the
# server's database pool, 10 / 80: see below). Ports and host are sticky while it runs.
#
# Idempotent: when everything is up it only checks (well under a second) and changes
# nothing. Needs root (installs packages, runs PostgreSQL as the `postgres` user).
# The database password never appears on a command line: mlflow gets the backend URI in
# MLFLOW_BACKEND_STORE_URI, psql gets its SQL on stdin.
# Prints one "up" line plus the `export MLFLOW_TRACKING_URI=...` line clients need.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh source-path=SCRIPTDIR
source "$HERE/env.sh"
# shellcheck source=../proc.sh source-path=SCRIPTDIR
source "$HERE/../proc.sh"
S=$BENCH_MLFLOW_DIR
READY_TIMEOUT=${BENCH_MLFLOW_READY_TIMEOUT:-60}

case ${1:-} in
  "") ;;
  -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
  *) echo "start.sh: unknown argument: $1" >&2; exit 2 ;;
esac

if [[ $(id -u) -ne 0 ]]; then
  echo "start.sh: must run as root (it installs packages and runs PostgreSQL as postgres)" >&2
  exit 1
fi
for v in "$_bench_pg_port" "$_bench_mlflow_port"; do
  if [[ ! $v =~ ^[0-9]{1,5}$ ]] || ((10#$v == 0 || 10#$v > 65535)); then
    echo "start.sh: not a TCP port: '$v'" >&2
    exit 2
  fi
done

PY=${BENCH_PYTHON:-$_bench_repo_root/.venv/bin/python}
MLFLOW=$(dirname "$PY")/mlflow
if [[ ! -x $PY || ! -x $MLFLOW ]]; then
  echo "start.sh: no $MLFLOW (set up the project first: make setup, or set BENCH_PYTHON)" >&2
  exit 1
fi

mkdir -p "$S"
chmod 0755 "$S"
ART=$S/artifacts PIDFILE=$S/mlflow.pid LOGFILE=$S/mlflow.log
PWFILE=$S/pg-password SIGFILE=$S/mlflow.sig

# One start/stop at a time. Every daemon is started with `9>&-`, or it would hold the lock.
exec 9>>"$S/.lock"
flock -w 300 9 || { echo "start.sh: could not get the lock $S/.lock" >&2; exit 1; }

log() { echo "start.sh: $*" >&2; }

# healthy: the tracking server answers GET /health.
healthy() {
  if command -v curl >/dev/null; then
    curl -fsS --noproxy '*' -m 5 -o /dev/null "$MLFLOW_TRACKING_URI/health" 2>/dev/null
  else
    "$PY" -c 'import sys, urllib.request as u
u.urlopen(u.Request(sys.argv[1]), timeout=5)' "$MLFLOW_TRACKING_URI/health" 2>/dev/null
  fi
}

# as_pg CMD...: run CMD as postgres, from a directory postgres may enter.
as_pg() { (cd / && runuser -u postgres -- "$@"); }

# urlencode STRING: percent-encode for the userinfo part of a URI (byte-wise).
urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

# write_if_changed FILE CONTENT MODE [OWNER]: returns 0 when the file was (re)written.
write_if_changed() {
  if [[ -f $1 ]] && [[ $(<"$1") == "${2%$'\n'}" ]]; then return 1; fi
  (umask 077 && printf '%s\n' "${2%$'\n'}" >"$1.tmp")
  chmod "$3" "$1.tmp"
  [[ -z ${4:-} ]] || chown "$4" "$1.tmp"
  mv -f "$1.tmp" "$1"
}

PGLOG="" # set once the PostgreSQL paths are known
# fail MSG: print MSG plus the tails of the logs, then exit 1.
fail() {
  echo "start.sh: ERROR: $*" >&2
  local f
  for f in "$PGLOG" "$LOGFILE"; do
    [[ -n $f && -s $f ]] || continue
    echo "----- tail of $f -----" >&2
    tail -n 20 "$f" >&2
  done
  exit 1
}

report_up() {
  echo "MLflow tracking server is up: $MLFLOW_TRACKING_URI (pid $(<"$PIDFILE")), PostgreSQL" \
    "$PGVER on 127.0.0.1:$_bench_pg_port, state in $S"
  echo "export MLFLOW_TRACKING_URI=$MLFLOW_TRACKING_URI"
}

# --- 1. The password (never on a command line, never in the repo) -------------------------
pw_changed=0
if [[ -n ${BENCH_PG_PASSWORD:-} ]]; then
  PW=$BENCH_PG_PASSWORD
  write_if_changed "$PWFILE" "$PW" 600 && pw_changed=1
elif [[ -s $PWFILE ]]; then
  PW=$(<"$PWFILE")
else
  PW=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  write_if_changed "$PWFILE" "$PW" 600 || true
  pw_changed=1
fi
chmod 600 "$PWFILE"
BACKEND_URI="postgresql+psycopg2://mlflow:$(urlencode "$PW")@127.0.0.1:$_bench_pg_port/mlflow"

# --- 2. Where PostgreSQL lives ----------------------------------------------------------------
PGDATA_LINK=$S/pgdata PGRUN_LINK=$S/pgrun
if [[ ! -e $PGDATA_LINK && ! -L $PGDATA_LINK ]]; then
  # First start: in the state dir if postgres can reach it and the socket path fits in
  # sun_path (107 bytes), else under /var/tmp (symlinked from the state dir).
  sock="$PGRUN_LINK/.s.PGSQL.$_bench_pg_port"
  if ((${#sock} + 5 > 107)) || ! runuser -u postgres -- test -x "$S" 2>/dev/null; then
    ext=/var/tmp/bench-mlflow-pg.$(printf '%s' "$S" | sha256sum | cut -c1-12)
    log "postgres cannot use $S (not traversable or path too long): PostgreSQL goes to $ext"
    install -d -o root -g root -m 0755 "$ext"
    install -d -o postgres -g postgres -m 0700 "$ext/pgdata" "$ext/pgrun"
    ln -sfn "$ext/pgdata" "$PGDATA_LINK"
    ln -sfn "$ext/pgrun" "$PGRUN_LINK"
  fi
fi
install -d -o postgres -g postgres -m 0700 "$PGDATA_LINK" "$PGRUN_LINK"
PGDATA=$(realpath "$PGDATA_LINK") PGRUN=$(realpath "$PGRUN_LINK")
PGLOG=$PGRUN/postgres.log
runuser -u postgres -- test -w "$PGRUN" 2>/dev/null ||
  fail "postgres cannot write $PGRUN (remove $PGDATA_LINK and $PGRUN_LINK to relocate)"

# --- 3. Debian's PostgreSQL (installed only when missing) -------------------------------------
if [[ -s $PGDATA/PG_VERSION ]]; then
  PGVER=$(<"$PGDATA/PG_VERSION")
else
  PGVER=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
    awk -F/ '{print $5}' | sort -n | tail -n 1)
fi
PGBIN=/usr/lib/postgresql/${PGVER:-none}/bin
if [[ ! -x $PGBIN/postgres || ! -x $PGBIN/initdb || ! -x $PGBIN/psql ]]; then
  pkg=postgresql
  [[ -n $PGVER ]] && pkg=postgresql-$PGVER # an existing pgdata needs its own major version
  log "installing $pkg (log: $S/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y --no-install-recommends "$pkg" >>"$S/apt.log" 2>&1; }
  # `apt-get update` only when the install needs it (no package lists yet, or it failed).
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || ! apt_install; then
    apt-get update >>"$S/apt.log" 2>&1 || fail "apt-get update failed (see $S/apt.log)"
    apt_install || { tail -n 20 "$S/apt.log" >&2; fail "apt-get install $pkg failed"; }
  fi
  PGVER=${PGVER:-$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' |
    awk -F/ '{print $5}' | sort -n | tail -n 1)}
  PGBIN=/usr/lib/postgresql/$PGVER/bin
  [[ -x $PGBIN/postgres ]] || fail "no PostgreSQL binaries in $PGBIN after installing $pkg"
fi

# The server's SQLAlchemy pool. MLflow's log_batch holds one pooled connection while the
# nested _log_params/_log_metrics/_set_tags take a second one, and the server runs up to 40
# requests at once (anyio's thread pool for the WSGI app). With the default pool (5 + 10
# overflow) 15 concurrent log_batch calls can hold every connection while each waits for a
# second: all stall for the 30 s pool timeout and fail ("QueuePool limit ... reached"), and
# the runs lose those points. 10 + 80 >= 2 x 40 rules that out; PostgreSQL gets headroom for
# it plus the server's start-up process and psql.
POOL_SIZE=${MLFLOW_SQLALCHEMYSTORE_POOL_SIZE:-10}
POOL_OVERFLOW=${MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW:-80}
[[ $POOL_SIZE =~ ^[0-9]+$ && $POOL_OVERFLOW =~ ^[0-9]+$ ]] ||
  fail "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE / _MAX_OVERFLOW must be integers"
PG_MAX_CONN=$((10#$POOL_SIZE + 10#$POOL_OVERFLOW + 60))

pg_conf="# Generated by cluster/mlflow/start.sh -- edits are overwritten.
listen_addresses = '127.0.0.1'
port = $_bench_pg_port
unix_socket_directories = '$PGRUN'
unix_socket_permissions = 0700
max_connections = $PG_MAX_CONN
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '"

pg_alive() { pid_alive postgres "$PGDATA/postmaster.pid"; }
mlflow_sig=$(printf '%s\n' "$MLFLOW" "$BACKEND_URI" "$_bench_mlflow_host" "$_bench_mlflow_port" \
  "$ART" workers=1 "pool=$POOL_SIZE+$POOL_OVERFLOW" | sha256sum | cut -d' ' -f1)

# --- Fast path: nothing to do -----------------------------------------------------------------
if ((!pw_changed)) && [[ -f $PGDATA/bench.conf && $(<"$PGDATA/bench.conf") == "$pg_conf" ]] &&
  [[ -f $SIGFILE && $(<"$SIGFILE") == "$mlflow_sig" ]] &&
  pg_alive && pid_alive mlflow "$PIDFILE" && healthy; then
  report_up
  exit 0
fi

# --- 4. The cluster: initdb once, config, start -----------------------------------------------
# port_busy HOST PORT: something accepts connections on HOST:PORT.
port_busy() {
  local host=${1#[}
  (exec 3<>"/dev/tcp/${host%]}/$2") 2>/dev/null
}
# reap_orphans: our own daemons whose state dir was deleted under them (rm -rf .cluster while
# they ran): they would hold the ports, and a postmaster beside a fresh initdb of the same
# path can corrupt it. Recognised exactly: a postgres whose cwd is "<our pgdata> (deleted)",
# an mlflow server whose cwd is "<our state dir> (deleted)". Their data is gone anyway.
reap_orphans() {
  local f pid cwd stat cmd killed=0
  for f in /proc/[0-9]*/cwd; do
    cwd=$(readlink "$f" 2>/dev/null) || continue
    [[ $cwd == "$PGDATA (deleted)" || $cwd == "$S (deleted)" ]] || continue
    pid=${f#/proc/} pid=${pid%/cwd}
    { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
    [[ $stat == "$pid ("*") "[^ZX]* ]] || continue
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    # The postmaster (backends exit when it dies), or the mlflow server / its uvicorn worker.
    if [[ $cmd == */bin/postgres\ -D\ * || $cmd == *mlflow* ]]; then
      log "killing orphan $pid (its state dir was deleted): ${cmd:0:60}"
      kill -KILL "$pid" 2>/dev/null || true
      killed=1
    fi
  done
  if ((killed)); then sleep 0.5; fi # let the postmaster's backends notice and exit
}
reap_orphans
if ! pg_alive && port_busy 127.0.0.1 "$_bench_pg_port"; then
  # E.g. a postmaster left running after its state dir was deleted: starting (or initdb
  # beside) it would fail or mix up two clusters.
  fail "port $_bench_pg_port is already in use, but not by our PostgreSQL (pgdata $PGDATA);" \
    "set BENCH_PG_PORT or stop what listens there"
fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  log "initialising PostgreSQL $PGVER cluster in $PGDATA"
  find "$PGDATA" -mindepth 1 -delete # the leftovers of an interrupted initdb
  as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 --no-instructions \
    >"$PGRUN/initdb.log" 2>&1 || fail "initdb failed (see $PGRUN/initdb.log)"
fi
grep -qx "include = 'bench.conf'" "$PGDATA/postgresql.conf" ||
  echo "include = 'bench.conf'" >>"$PGDATA/postgresql.conf"
pg_started=0
if write_if_changed "$PGDATA/bench.conf" "$pg_conf" 600 postgres:postgres && pg_alive; then
  log "PostgreSQL config changed: restarting it"
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -m fast -w -t 60 restart >/dev/null 9>&- ||
    fail "pg_ctl restart failed"
  pg_started=1
fi
if ! pg_alive; then
  # Stale pid/lock files (killed, or a reboot): postgres would refuse to start on them if
  # their pid now belongs to another process.
  rm -f "$PGDATA/postmaster.pid" "$PGRUN/.s.PGSQL.$_bench_pg_port" \
    "$PGRUN/.s.PGSQL.$_bench_pg_port.lock"
  log "starting PostgreSQL $PGVER on 127.0.0.1:$_bench_pg_port"
  as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 start >/dev/null 9>&- ||
    fail "PostgreSQL did not start on port $_bench_pg_port"
  pg_started=1
fi
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGRUN" -p "$_bench_pg_port" -U postgres)
PW_SQL=${PW//\'/\'\'} # a SQL string literal (standard_conforming_strings is on)
# Role and database (idempotent); the password travels on stdin, the server hashes it (SCRAM).
as_pg "${PSQL[@]}" -d postgres >/dev/null <<SQL || fail "could not create role/database mlflow"
SELECT 'CREATE ROLE mlflow LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlflow')
\gexec
ALTER ROLE mlflow WITH LOGIN PASSWORD '$PW_SQL';
SELECT 'CREATE DATABASE mlflow OWNER mlflow ENCODING ''UTF8'''
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')
\gexec
SQL

# stop_mlflow: TERM its process group (setsid: mlflow + its uvicorn child), wait up to
# 10 s, then KILL what is left.
stop_mlflow() {
  local pgid
  if pgid=$(stop_group "$PIDFILE" mlflow); then
    log "stopped the MLflow server (process group $pgid)"
  fi
  rm -f "$PIDFILE" "$SIGFILE"
}
# Keep a running server only if it is healthy, has these settings, and PostgreSQL was not
# (re)started under it; otherwise stop it (and any orphaned worker) and start afresh.
if ! pid_alive mlflow "$PIDFILE" || ((pg_started)) || ! healthy ||
  [[ ! -f $SIGFILE || $(<"$SIGFILE") != "$mlflow_sig" ]]; then
  stop_mlflow
fi
if ! pid_alive mlflow "$PIDFILE"; then
  rm -f "$PIDFILE" "$SIGFILE"
  port_busy "$_bench_mlflow_connect" "$_bench_mlflow_port" &&
    fail "port $_bench_mlflow_port is already in use (another server?); set BENCH_MLFLOW_PORT"
  "$PY" -c 'import psycopg2' 2>/dev/null ||
    fail "$PY cannot import psycopg2 (pip install psycopg2-binary, or make setup)"
  mkdir -p "$ART"
  log "starting the MLflow server on $MLFLOW_TRACKING_URI (log: $LOGFILE)"
  echo "=== $(date -Is) start.sh: mlflow server --host $_bench_mlflow_host" \
    "--port $_bench_mlflow_port" >>"$LOGFILE"
  # setsid: its own process group, so stop.sh ends the uvicorn child too. The backend URI
  # (with the password) goes in the environment, not on the command line `ps` shows.
  (
    cd "$S"
    export MLFLOW_BACKEND_STORE_URI=$BACKEND_URI MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
      MLFLOW_SQLALCHEMYSTORE_POOL_SIZE=$POOL_SIZE MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW=$POOL_OVERFLOW
    exec setsid "$MLFLOW" server --artifacts-destination "$ART" --serve-artifacts \
      --host "$_bench_mlflow_host" --port "$_bench_mlflow_port" --workers 1 \
      </dev/null >>"$LOGFILE" 2>&1 9>&-
  ) &
  pid=$!
  echo "$pid" >"$PIDFILE"
  printf '%s\n' "$mlflow_sig" >"$SIGFILE"
  chmod 600 "$SIGFILE"
  for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
    healthy && break
    # Any name: the subshell becomes `mlflow` only once it has exec'ed.
    running "$pid" || fail "the MLflow server exited during start-up"
    sleep 0.2
  done
  healthy || fail "the MLflow server did not answer $MLFLOW_TRACKING_URI/health in ${READY_TIMEOUT}s"
fi

printf 'mlflow_host=%s\nmlflow_port=%s\npg_port=%s\n' "$_bench_mlflow_host" \
  "$_bench_mlflow_port" "$_bench_pg_port" >"$S/server.conf"
report_up
