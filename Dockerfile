# news-monitor: one image for both Kafka-runtime processes.
#
#   docker build -t news-monitor .
#   docker run --rm news-monitor rules check /app/alert_rules
#   docker run --rm -e MONITOR_KAFKA_BOOTSTRAP=kafka:9092 news-monitor poll
#   docker run --rm -e MONITOR_KAFKA_BOOTSTRAP=kafka:9092 news-monitor worker --metrics-port 9108
#
# Every dependency (rocksdict, pyahocorasick, PyStemmer, aiohttp, ...) ships manylinux wheels for
# CPython 3.11, so the slim image needs no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Build from a scratch directory and delete it: with the source tree left in /app, `python -m
# monitor` or a shell in /app would import that copy instead of the installed package.
# Only what the build needs is copied (README.md is pyproject's `readme`); tests, bench and deploy
# stay out (see .dockerignore), so editing them does not invalidate this layer.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir ".[kafka]" \
    && rm -rf /src

WORKDIR /app

# The rules the image ships with; compose and Kubernetes mount the real ones over or beside them.
COPY alert_rules /app/alert_rules

# A fixed numeric uid (not root) so Kubernetes' runAsNonRoot can verify it and fsGroup matches.
# /var/lib/monitor is created here and owned by that user: Docker copies a directory's ownership
# into a fresh named or anonymous volume mounted on it, so the poller's SQLite state and the
# worker's RocksDB tables are writable without running as root.
RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/monitor \
    && chown monitor:monitor /var/lib/monitor

# Container defaults; every one can be overridden with -e / environment:.
# MONITOR_METRICS_HOST=0.0.0.0: the app's 127.0.0.1 default is unreachable from Prometheus.
ENV MONITOR_RULES=/app/alert_rules \
    MONITOR_STATE=/var/lib/monitor/state.db \
    MONITOR_DATA_DIR=/var/lib/monitor/worker \
    MONITOR_METRICS_HOST=0.0.0.0 \
    MONITOR_LOG_FORMAT=json

USER 10001:10001

ENTRYPOINT ["monitor"]
CMD ["worker"]
