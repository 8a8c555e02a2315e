#!/usr/bin/env bash
# Make a Docker engine answer here: reuse one that answers, or start Debian's
# dockerd (docker.io) as root.
#
# It starts with settings that need no overlay file system, iptables or bridge
# network: --storage-driver=vfs --iptables=false --bridge=none (containers then
# run with --network host, builds with `docker build --network host`). Its data
# stays in /var/lib/docker between runs, so images built once are reused.
#
# stdout: the pid of the dockerd it started, or nothing if one already answered.
# Exit 0 once `docker info` answers; 1 with the reason on stderr otherwise.
set -euo pipefail

log=${KAFKA_BRIDGE_DOCKERD_LOG:-/var/log/kafka-bridge-dockerd.log}

command -v docker >/dev/null || { echo "no docker client (Debian: apt-get install docker.io)" >&2; exit 1; }
if docker info >/dev/null 2>&1; then
    exit 0
fi
command -v dockerd >/dev/null || { echo "no engine answers and there is no dockerd to start (Debian: apt-get install docker.io)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "no engine answers and starting dockerd needs root" >&2; exit 1; }

mkdir -p /var/lib/docker "$(dirname "$log")"
setsid dockerd --storage-driver=vfs --iptables=false --bridge=none --data-root /var/lib/docker \
    >>"$log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 120); do
    if docker info >/dev/null 2>&1; then
        echo "$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "dockerd exited at start; the end of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sleep 0.5
done
kill "$pid" 2>/dev/null || true
echo "dockerd did not answer within 60 s; the end of $log:" >&2
tail -n 20 "$log" >&2
exit 1
