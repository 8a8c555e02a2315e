# kafka-bridge daemon image. Build and run: docs/deployment.md.
#
#   docker build -t kafka-bridge .
#   docker run -v /path/to/conf-dir:/etc/kafka-bridge:ro -p 9464:9464 kafka-bridge
#
# The configuration is mounted at /etc/kafka-bridge (kafka-bridge.conf in it);
# set [metrics] host = 0.0.0.0 there so probes and Prometheus outside the
# container reach port 9464.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the build needs (README.md is the package's long description).
COPY pyproject.toml setup.cfg README.md /src/
COPY kafka_bridge /src/kafka_bridge
# A regular (not editable) install; every dependency has a wheel, so no compiler.
RUN pip install --no-cache-dir /src \
    && rm -rf /src

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it without runAsUser.
RUN groupadd --system --gid 10001 kafka-bridge \
    && useradd --system --uid 10001 --gid kafka-bridge --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kafka-bridge \
    && mkdir -p /etc/kafka-bridge
USER 10001:10001

# [metrics] port: /metrics, /healthz (alive) and /readyz (both sides connected).
EXPOSE 9464

# No curl in the slim image: Python's urllib; any error or non-2xx status fails.
# 127.0.0.1 works whether [metrics] host is 127.0.0.1 or 0.0.0.0.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

# SIGTERM (docker stop, Kubernetes) goes to the master, which stops the worker
# gracefully within [kafka_bridge] shutdown_timeout (8 s by default): allow more
# than that (docker stop -t 20; Kubernetes' default grace period is 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["kafka-bridge"]
CMD ["--config-file", "/etc/kafka-bridge/kafka-bridge.conf"]
