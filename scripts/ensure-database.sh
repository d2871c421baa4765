#!/usr/bin/env bash
# Create Berth's PostgreSQL database if it does not exist yet (DATABASE_URL, or the local default).
set -euo pipefail
url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/berth}"
name="${url##*/}"; name="${name%%\?*}"
server="${url%/*}/postgres"
if ! psql "$server" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
  psql "$server" -qc "CREATE DATABASE \"$name\""
  echo "created database $name"
fi
