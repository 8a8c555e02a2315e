"""``python -m kafka_bridge.daemon.healthcheck [--config-file F] [--config-dir D]``.

The container image's HEALTHCHECK: it reads the configuration the daemon reads
(the same command-line options, the same default files and directories of
project ``kafka-bridge``, the same ``OS_METRICS__*`` environment variables) and
requests ``/healthz`` on the ``[metrics]`` host and port found there.

Exits 0 when /healthz answers 2xx and 1 otherwise (Docker's healthy and
unhealthy), naming the reason on stderr.
"""

from __future__ import annotations

import sys
import urllib.request
from typing import NamedTuple

from oslo_config import cfg
from oslo_log import log as logging

from kafka_bridge.daemon import options

#: seconds a probe waits; below the image's HEALTHCHECK --timeout
TIMEOUT = 4.0

#: a wildcard listen address is probed on the loopback of its family
_WILDCARD_PROBES = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(host: str, port: int) -> str:
    """The /healthz URL of an endpoint listening on host:port."""
    host = _WILDCARD_PROBES.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


class MetricsEndpoint(NamedTuple):
    """The [metrics] options of a configuration."""

    enabled: bool
    host: str
    port: int


def configured_endpoint(argv: list[str]) -> MetricsEndpoint:
    """[metrics] as the daemon started with argv reads it; raises cfg.Error."""
    conf = cfg.ConfigOpts()
    # the daemon's command-line options (--debug, --log-file, ...) must parse here too
    logging.register_options(conf)
    options.register(conf)
    conf(argv, project="kafka-bridge", prog="kafka-bridge")
    # values are converted (and refused) when read
    return MetricsEndpoint(conf.metrics.enabled, conf.metrics.host, conf.metrics.port)


def probe(url: str) -> None:
    """GET url; raises OSError (URLError, HTTPError on non-2xx, timeout) if unhealthy."""
    # a proxy from the environment must not stand between the probe and the daemon
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=TIMEOUT):
        pass


def main(argv: list[str] | None = None) -> int:
    """Probe the configured /healthz once; 0 healthy, 1 unhealthy with the reason on stderr."""
    try:
        endpoint = configured_endpoint(sys.argv[1:] if argv is None else argv)
    except cfg.Error as exc:
        print(f"kafka-bridge healthcheck: configuration: {exc}", file=sys.stderr)
        return 1
    if not endpoint.enabled:
        print("kafka-bridge healthcheck: [metrics] enabled = false, so there is no /healthz "
              "to probe; enable it or run the container with --no-healthcheck",
              file=sys.stderr)
        return 1
    url = healthz_url(endpoint.host, endpoint.port)
    try:
        probe(url)
    except OSError as exc:
        print(f"kafka-bridge healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
