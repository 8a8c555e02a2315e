#!/usr/bin/env bash
# Install the Debian packages kafka-bridge's demo and tests need, if missing:
# a JDK/JRE and Maven (Kafka is assembled from Maven Central), Debian's
# rabbitmq-server, openssl (devenv's TLS certificates) and python3-venv.
set -euo pipefail

missing=()
command -v java >/dev/null || missing+=(default-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
command -v openssl >/dev/null || missing+=(openssl)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

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
# Debian starts the system RabbitMQ on install; kafka-bridge's devenv runs
# its own private node and does not need it.
if [[ " ${missing[*]} " == *" rabbitmq-server "* ]]; then
    $sudo service rabbitmq-server stop >/dev/null 2>&1 || true
fi
