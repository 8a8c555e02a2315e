# kafka-bridge daemon image. Build and run: docs/deployment.md.
#
#   make image                       # docker build -t kafka-bridge:<version> .
#   docker run -v /path/to/conf-dir:/etc/kafka-bridge:ro -p 9464:9464 kafka-bridge:<version>
#
# The configuration is mounted at /etc/kafka-bridge (kafka-bridge.conf in it);
# set [metrics] host = 0.0.0.0 there so probes and Prometheus outside the
# container reach the metrics port.
#
# BASE_IMAGE: any image with Python 3.10+ as python3 (at /usr/local/bin or
# /usr/bin) and its venv module (Debian: python3-venv), plus groupadd/useradd.
#
# One stage: a build stage would save only the copied sources (under 1 MB),
# and copying the virtualenv out of it makes every rebuild checksum it.
# Everything but the package comes first, so that a change to the package
# rebuilds only the last steps (each step copies the whole file system on
# engines with the vfs storage driver).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kafka-bridge" \
      org.opencontainers.image.description="Bridges OpenStack oslo.messaging notifications between RabbitMQ and Apache Kafka" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="docs/deployment.md in the source tree"
ENV PATH=/opt/kafka-bridge/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it without runAsUser.
RUN groupadd --system --gid 10001 kafka-bridge \
    && useradd --system --uid 10001 --gid kafka-bridge --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kafka-bridge \
    && mkdir -p /etc/kafka-bridge

# the default [metrics] port: /metrics, /healthz (alive) and /readyz (both sides connected)
EXPOSE 9464

# Probes /healthz on the [metrics] host and port of the configuration the
# daemon reads (pass the same --config-file/--config-dir if you change CMD);
# Python's urllib, as slim images have no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "kafka_bridge.daemon.healthcheck", "--config-file", "/etc/kafka-bridge/kafka-bridge.conf"]

# SIGTERM (docker stop, Kubernetes; Docker's default stop signal) goes to the
# master, which stops the worker gracefully within [kafka_bridge]
# shutdown_timeout (8 s by default): allow more than that (docker stop -t 20;
# Kubernetes' default grace period is 30 s).
ENTRYPOINT ["kafka-bridge"]
CMD ["--config-file", "/etc/kafka-bridge/kafka-bridge.conf"]

# Only what the package build reads (README.md is its long description).
COPY pyproject.toml setup.cfg README.md /src/
COPY kafka_bridge /src/kafka_bridge
# A virtualenv owned by root (the daemon cannot change its own code), with a
# regular (not editable) install; every dependency has a wheel, so no compiler.
# The image never installs anything, so pip itself is left out of it.
RUN python3 -m venv /opt/kafka-bridge \
    && PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/kafka-bridge/bin/pip install --no-cache-dir /src \
    && /opt/kafka-bridge/bin/pip uninstall --yes --quiet pip \
    && rm -rf /src
USER 10001:10001
