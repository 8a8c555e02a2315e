#!/usr/bin/env bash
# Install the Debian packages kafka-bridge's demo and tests need, if missing:
# a JDK/JRE and Maven (Kafka is assembled from Maven Central), Debian's
# rabbitmq-server, openssl (devenv's TLS certificates), python3-venv, and for
# the image and monitoring tests a container engine (docker.io), debootstrap
# (their local Debian base image) and prometheus (the server and promtool).
set -euo pipefail

missing=()
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v openssl >/dev/null || missing+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v prometheus >/dev/null || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing Debian packages: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts system services on install where it can; the tests run their
# own RabbitMQ node and Prometheus, and start dockerd with their own settings.
stop_if_installed_now() {  # package service
    if [[ " ${missing[*]} " == *" $1 "* ]]; then
        $sudo service "$2" stop >/dev/null 2>&1 || true
    fi
}
stop_if_installed_now rabbitmq-server rabbitmq-server
stop_if_installed_now prometheus prometheus
stop_if_installed_now docker.io docker
