#!/usr/bin/env bash
# Starts a Vltava node without systemd (Kafka's kafka-server-start.sh, for one binary).
#
# Usage: vltava-start.sh [--daemon] [CONFIG] [--override key=value ...]
#   CONFIG defaults to /etc/vltava/server.properties (or $VLTAVA_CONFIG).
#   --daemon runs in the background, logging to $VLTAVA_LOG_DIR/server.log (default
#   /var/log/vltava) and writing its pid to $VLTAVA_PID_FILE (default /run/vltava/vltava.pid),
#   which vltava-stop.sh reads.
set -euo pipefail

bin="${VLTAVA_BIN:-$(command -v vltava || echo /usr/local/bin/vltava)}"
config="${VLTAVA_CONFIG:-/etc/vltava/server.properties}"
log_dir="${VLTAVA_LOG_DIR:-/var/log/vltava}"
pid_file="${VLTAVA_PID_FILE:-/run/vltava/vltava.pid}"
daemon=no
overrides=()

while [ $# -gt 0 ]; do
  case "$1" in
    --daemon|-daemon) daemon=yes; shift ;;
    --override) overrides+=(--override "$2"); shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "vltava-start.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) config="$1"; shift ;;
  esac
done

if [ ! -x "$bin" ]; then
  echo "vltava-start.sh: no vltava binary at $bin (set VLTAVA_BIN)" >&2
  exit 1
fi
if [ ! -r "$config" ]; then
  echo "vltava-start.sh: cannot read $config" >&2
  exit 1
fi

if [ "$daemon" = no ]; then
  exec "$bin" server --config "$config" "${overrides[@]}"
fi

if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  echo "vltava-start.sh: already running as pid $(cat "$pid_file")" >&2
  exit 1
fi
mkdir -p "$log_dir" "$(dirname "$pid_file")"
nohup "$bin" server --config "$config" "${overrides[@]}" >>"$log_dir/server.log" 2>&1 &
echo $! >"$pid_file"
echo "vltava started as pid $!, logging to $log_dir/server.log"
