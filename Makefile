# One command for each common job. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
UV ?= uv
PY := $(UV) run --frozen python
# `make run` and its helpers use the development settings; the tests take theirs from pyproject.toml.
RUN_SETTINGS := DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-berth.settings.dev}

.PHONY: deps run test test-fast lint format bench testbed migrate

deps:
	@command -v $(UV) >/dev/null || pip install --quiet uv
	$(UV) sync --frozen --quiet

migrate: deps
	@scripts/ensure-database.sh
	$(RUN_SETTINGS) $(PY) manage.py migrate --noinput

## run: web, worker and beat against the local PostgreSQL, Redis and Docker engine
run: deps migrate
	@scripts/ensure-docker.sh
	@command -v busybox >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
	@testbed/images.sh  # the demo app's image, built locally (no registry is reachable)
	@mkdir -p var
	@scripts/ensure-router.sh
	$(RUN_SETTINGS) $(PY) manage.py router configure --dir var/router --http-port 8080 --https-port 8443
	$(RUN_SETTINGS) $(PY) manage.py bootstrap
	$(RUN_SETTINGS) $(UV) run --frozen honcho start -f Procfile

## test: the whole suite, on the real PostgreSQL, Redis, Docker engine and Chromium
test: deps testbed
	DJANGO_SETTINGS_MODULE=berth.settings.test $(UV) run --frozen pytest

## test-fast: the tests that need no Docker engine and no browser, for quick loops (CI runs `make test`)
test-fast: deps
	DJANGO_SETTINGS_MODULE=berth.settings.test $(UV) run --frozen pytest -m "not docker and not browser"

testbed:
	@scripts/ensure-docker.sh
	@scripts/ensure-router.sh
	@scripts/ensure-chromium.sh
	@testbed/hosts.sh up 3 --userns-remap 3  # h1 and h2 for the fleet, h3 remaps user namespaces

## lint: ruff, then mypy over berth and worker (configured in pyproject.toml; its cache is .mypy_cache/)
lint: deps
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: deps
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

## bench: benchmarks in benchmarks/, results printed and appended to benchmarks/results/
bench: deps
	$(PY) benchmarks/run.py
