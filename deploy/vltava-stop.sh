#!/usr/bin/env bash
# Stops a Vltava node started by vltava-start.sh --daemon: SIGTERM (a clean shutdown: in-flight
# requests answered, logs flushed, clean-shutdown marker written), then waits for it to exit.
#
# Usage: vltava-stop.sh [--timeout SECONDS]    (default 120; then SIGKILL, which is safe but
#   makes the next start recover the logs)
#   The pid comes from $VLTAVA_PID_FILE (default /run/vltava/vltava.pid).
set -euo pipefail

pid_file="${VLTAVA_PID_FILE:-/run/vltava/vltava.pid}"
timeout=120

while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) timeout="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "vltava-stop.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ ! -f "$pid_file" ]; then
  echo "vltava-stop.sh: no pid file at $pid_file; is vltava running?" >&2
  exit 1
fi
pid="$(cat "$pid_file")"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "vltava-stop.sh: pid $pid is not running; removing $pid_file"
  rm -f "$pid_file"
  exit 0
fi

kill -TERM "$pid"
for _ in $(seq 1 "$timeout"); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pid_file"
    echo "vltava stopped"
    exit 0
  fi
  sleep 1
done
echo "vltava-stop.sh: pid $pid still running after ${timeout}s; sending SIGKILL" >&2
kill -KILL "$pid" 2>/dev/null || true
rm -f "$pid_file"
exit 1
