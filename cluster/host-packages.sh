#!/usr/bin/env bash
# Debian packages the runner uses on this host: rsync (staging environments onto a
# filesystem), strace (syscall counts of the warm-up import), and for the tests of
# `bench report` chromium (headless rendering of the results page) and poppler-utils
# (pdftoppm: pages of summary.pdf as PNG).  Installed with apt-get when missing and
# running as root; otherwise the missing ones are named and the command to install them
# is printed.
set -euo pipefail
need=()
command -v rsync  >/dev/null 2>&1 || need+=(rsync)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }
else
  echo "host-packages: missing ${need[*]}; install with: sudo apt-get install ${need[*]}" >&2
fi
