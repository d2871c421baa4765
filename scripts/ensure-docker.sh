#!/usr/bin/env bash
# Install (Debian's docker.io and docker-compose) and start the local Docker engine if it is not answering yet.
set -euo pipefail
apt_install() {
  echo "installing $1…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}
# tests/test_compose.py validates docker-compose.yml with it.
if ! command -v docker-compose >/dev/null; then apt_install docker-compose; fi
if docker version >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then apt_install docker.io; fi
mkdir -p /var/log/berth
echo "starting dockerd…"
nohup dockerd --host unix:///var/run/docker.sock >/var/log/berth/dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  if docker version >/dev/null 2>&1; then
    echo "dockerd $(docker version --format '{{.Server.Version}}') is answering"
    exit 0
  fi
  sleep 0.5
done
echo "dockerd did not start; see /var/log/berth/dockerd.log" >&2
tail -20 /var/log/berth/dockerd.log >&2
exit 1
