#!/usr/bin/env bash
# Installs Vltava as a systemd service on this machine:
#   the `vltava` system user, /etc/vltava/server.properties, /var/lib/vltava, the binary in
#   /usr/local/bin, the unit, and enables it at boot (and starts it, unless --no-start).
#
# Usage (as root, from the repository or an unpacked release):
#   deploy/install.sh [--binary PATH] [--config PATH] [--no-start]
# For a cluster node: deploy/install.sh --config deploy/cluster/node1.properties
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
binary=""
config="$here/server.properties"
start=yes

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root" >&2
  exit 1
fi

if [ -z "$binary" ]; then
  for candidate in "$here/../target/release/vltava" "$here/vltava" "$(command -v vltava || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      binary="$candidate"
      break
    fi
  done
fi
if [ -z "$binary" ] || [ ! -x "$binary" ]; then
  echo "install.sh: no vltava binary found; build one (cargo build --release) or pass --binary PATH" >&2
  exit 1
fi

if ! id vltava >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/vltava --shell /usr/sbin/nologin vltava
fi

install -d -o vltava -g vltava -m 0750 /var/lib/vltava /var/lib/vltava/data
install -d -m 0755 /etc/vltava
if [ -e /etc/vltava/server.properties ]; then
  echo "keeping the existing /etc/vltava/server.properties (new one: /etc/vltava/server.properties.new)"
  install -m 0644 "$config" /etc/vltava/server.properties.new
else
  install -m 0644 "$config" /etc/vltava/server.properties
fi

install -m 0755 "$binary" /usr/local/bin/vltava
install -m 0644 "$here/systemd/vltava.service" /etc/systemd/system/vltava.service
install -m 0755 "$here/vltava-start.sh" /usr/local/bin/vltava-start
install -m 0755 "$here/vltava-stop.sh" /usr/local/bin/vltava-stop

systemctl daemon-reload
systemctl enable vltava.service
if [ "$start" = yes ]; then
  systemctl restart vltava.service
  echo "vltava started: systemctl status vltava; journalctl -u vltava -f"
else
  echo "vltava installed and enabled; start it with: systemctl start vltava"
fi
