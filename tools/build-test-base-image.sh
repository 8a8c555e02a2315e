#!/usr/bin/env bash
# The base image the tests build the product image on, made locally because no
# image registry is reachable: Debian bookworm (Python 3.11 at /usr/bin/python3)
# from the mirror apt uses, by debootstrap, then `docker import`.
#
# FOR TESTS ONLY: it carries THIS HOST's CA bundle (/etc/ssl/certs/ca-certificates.crt)
# and points pip at it, so that pip inside `docker build` trusts a TLS-intercepting
# proxy the host trusts. The product Dockerfile neither needs nor adds it.
#
# The tag is a digest of this script and that bundle: an image already in the
# engine is reused (about a minute saved), and a change to either makes a new one.
#
# Usage: tools/build-test-base-image.sh [REPOSITORY]   (default kafka-bridge-test-base)
# stdout: the image reference (REPOSITORY:TAG). Needs root, debootstrap and an engine.
set -euo pipefail

repository=${1:-kafka-bridge-test-base}
suite=bookworm
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -r "$ca_bundle" ] || { echo "no host CA bundle at $ca_bundle" >&2; exit 1; }

tag=$(cat "$0" "$ca_bundle" | sha256sum | cut -c1-12)
image="$repository:$suite-$tag"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

command -v debootstrap >/dev/null || { echo "no debootstrap (Debian: apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root" >&2; exit 1; }

# The first Debian (not security) mirror of apt's sources, as apt reaches it.
mirror=$(sed -n -E 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v -e security -e '^$' | grep -m1 debian || true)
if [ -z "$mirror" ]; then
    mirror=$(sed -n -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
        /etc/apt/sources.list 2>/dev/null | grep -v security | grep -m1 debian || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /var/tmp/kafka-bridge-test-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
echo "debootstrap $suite from $mirror (about a minute)" >&2
if ! debootstrap --variant=minbase --include=python3,python3-venv "$suite" "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    exit 1
fi
install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
# Fewer bytes for vfs to copy at every build step: nothing here runs apt or reads docs.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*

for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$repository"); do
    docker image rm "$old" >/dev/null 2>&1 || true
done
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change 'CMD ["/bin/bash"]' \
    - "$image" >/dev/null
echo "$image"
