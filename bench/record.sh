#!/usr/bin/env bash
# Runs one benchmark and keeps its output as bench/results/NAME.txt, with the date, the commit, the machine and
# the command at its top, so that the docs can point at a measured figure instead of copying it.
#   bash bench/record.sh speed .venv/bin/python bench/speed.py
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: bash bench/record.sh NAME COMMAND [ARGS...]" >&2; exit 2; }
name=$1; shift
cd "$(dirname "$0")/.."
mkdir -p bench/results
out="bench/results/$name.txt"
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC')  commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# command: $*"
    echo
} > "$out"
"$@" 2>&1 | tee -a "$out"
rc=${PIPESTATUS[0]}
echo "# exit code $rc" >> "$out"
exit "$rc"
