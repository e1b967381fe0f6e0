# syntax=docker/dockerfile:1
# Cronium in one container: web UI, REST API, Runtime API, scheduler and workers.
#
#   docker build -t cronium .                                        # from python:3.12-slim
#   docker build --build-arg BASE=cronium/base:<hash> -t cronium .   # from scripts/build-images' base
#
# BASE needs python3 (>= 3.11) with the venv module and ensurepip (Debian: python3-venv).
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
USER root
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/cronium
# Dependencies first (a layer that survives source changes), then Cronium itself. Wheels in
# an optional .wheels/ directory of the build context are used instead of an index
# (`pip wheel -w .wheels hatchling .`, as scripts/e2e-image does on machines without PyPI).
COPY pyproject.toml README.md .wheel[s] /build/
RUN if ls /build/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/build; fi \
 && mkdir -p /build/src/cronium && touch /build/src/cronium/__init__.py \
 && /opt/cronium/bin/pip install /build \
 && /opt/cronium/bin/pip uninstall -y cronium
COPY src /build/src
RUN if ls /build/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/build; fi \
 && /opt/cronium/bin/pip install --no-deps /build \
 && /opt/cronium/bin/pip uninstall -y pip setuptools \
 && find /opt/cronium -name __pycache__ -prune -exec rm -rf {} + \
 && /opt/cronium/bin/python -m compileall -q /opt/cronium/lib

FROM ${BASE}
USER root
RUN (getent group cronium || groupadd --system --gid 10001 cronium) \
 && (getent passwd cronium || useradd --system --uid 10001 --gid 10001 \
      --home-dir /data --no-create-home --shell /usr/sbin/nologin cronium) \
 && mkdir -p /data /run/cronium \
 && chown 10001:10001 /data /run/cronium
COPY --from=build /opt/cronium /opt/cronium
ENV PATH=/opt/cronium/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CRONIUM_HOST=0.0.0.0 \
    CRONIUM_PORT=8080 \
    CRONIUM_DATA_DIR=/data \
    CRONIUM_RUNTIME_SOCKET=/run/cronium/runtime.sock
# Both are volumes: /data holds the keys (and an embedded database without DATABASE_URL);
# /run/cronium holds the Runtime API socket. Give /run/cronium a *named* volume and set
# CRONIUM_RUNTIME_VOLUME to its name so job containers get the same socket.
VOLUME ["/data", "/run/cronium"]
USER 10001:10001
WORKDIR /data
EXPOSE 8080
# /health answers while the process serves; /ready also checks the database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import os,sys,urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CRONIUM_PORT', '8080'), timeout=4); sys.exit(0)"]
# exec form: cronium is PID 1 and gets SIGTERM itself (drains running jobs, then exits).
STOPSIGNAL SIGTERM
ENTRYPOINT ["cronium"]
CMD ["serve"]
