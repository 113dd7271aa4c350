# shellcheck shell=bash
# Process checks shared by the cluster/ scripts (sourced, never run). PID 1 on these
# machines reaps exited processes late, so a zombie counts as dead everywhere.

# running PID: a live, non-zombie process.
running() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  [[ $stat == "$1 ("*") "[^ZX]* ]]
}

# pid_alive NAME PIDFILE: the pid file's first line names a live process called NAME
# (the name guards against pid reuse).
pid_alive() {
  local pid stat
  { read -r pid <"$2"; } 2>/dev/null || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  { read -r stat <"/proc/$pid/stat"; } 2>/dev/null || return 1
  [[ $stat == "$pid ($1) "[^ZX]* ]]
}

# group_alive PIDFILE WORD: print the process group in PIDFILE if a live process of that
# group still runs a command containing WORD.
group_alive() {
  local pgid f stat fields
  { read -r pgid <"$1"; } 2>/dev/null || return 1
  [[ $pgid =~ ^[0-9]+$ ]] || return 1
  for f in /proc/[0-9]*/stat; do
    { read -r stat <"$f"; } 2>/dev/null || continue
    read -r -a fields <<<"${stat##*) }" # state ppid pgrp ...
    [[ ${fields[2]} == "$pgid" && ${fields[0]} != [ZX] ]] || continue
    [[ $(tr '\0' ' ' <"${f%/stat}/cmdline" 2>/dev/null) == *"$2"* ]] || continue
    echo "$pgid"
    return 0
  done
  return 1
}

# stop_group PIDFILE WORD: TERM the process group in PIDFILE (see group_alive), wait up to
# 10 s, then KILL what is left; print the group id when there was one to stop.
stop_group() {
  local pgid i
  pgid=$(group_alive "$1" "$2") || return 1
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    group_alive "$1" "$2" >/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  echo "$pgid"
}
