# syntax=docker/dockerfile:1
#
# webhook-gateway container image. Build: docker build -t webhook-gateway:0.1.0 .
# The base is pinned by exact tag; pin it by digest too (python:3.11.13-slim-bookworm@sha256:...)
# once you can resolve the digest in your registry (see docs/deploy.md).

# --- builder: install the locked dependencies and the gateway into a self-contained venv -----
FROM python:3.11.13-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Every dependency comes from requirements/image.txt: exact versions, each file's sha256 checked
# (--require-hashes), wheels only, so no compiler runs and a rebuild installs the same bytes.
# Refresh the lock with `bash scripts/lock` (docs/deploy.md, "The image"). The venv has no pip:
# the base's pip installs into it (--python), so pip never reaches the runtime stage.
COPY requirements/image.txt requirements/build.txt ./requirements/
RUN python -m venv --without-pip /opt/venv \
    && python -m pip install --no-cache-dir --require-hashes --only-binary :all: \
       -r requirements/build.txt \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes \
       --only-binary :all: -r requirements/image.txt

COPY pyproject.toml README.md LICENSE ./
COPY gateway ./gateway
COPY transforms ./transforms
# The gateway's own wheel, built with the locked setuptools (no isolated build environment that
# would fetch an unpinned one), installed without dependencies: they are all locked above.
# pip compiles .pyc files into the venv here, so the read-only final image never needs to.
# The lock holds the postgres extra's psycopg (binary wheel) and pool, so one image runs either
# outbox backend.
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
       /wheels/webhook_gateway-*.whl \
    && python -m pip --python /opt/venv/bin/python check

# --- final: the venv on the same base, no build tools, non-root --------------------------------
FROM python:3.11.13-slim-bookworm

LABEL org.opencontainers.image.title="webhook-gateway" \
      org.opencontainers.image.description="Verify provider webhooks, transform them into Inngest events, forward them durably." \
      org.opencontainers.image.licenses="Apache-2.0"

# Fixed IDs so Kubernetes securityContext (runAsUser/fsGroup 10001) and volume ownership agree.
# The base's own pip, setuptools and wheel go: nothing installs packages at run time.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gateway \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0750 /data \
    && python -m pip uninstall --yes --no-cache-dir pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.11/ensurepip

COPY --from=builder /opt/venv /opt/venv
# The licence text travels with the image (Apache-2.0 asks for it), beside the wheel's copy.
COPY --from=builder /src/LICENSE /usr/share/licenses/webhook-gateway/LICENSE

# Nothing writes outside /data (the outbox) and /tmp: the root filesystem may be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_DATA_DIR=/data

VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080

# The gateway drains its outbox on SIGTERM ([forwarder] shutdown_deadline) and exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# Exec form: the gateway is PID 1 and receives SIGTERM itself (no shell in between, no init).
ENTRYPOINT ["webhook-gateway"]
CMD ["serve"]
