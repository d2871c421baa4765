#!/usr/bin/env bash
# Refresh the dashboard's vendored front-end files from their npm packages (docs/dashboard.md#assets).
# The files and their licenses are committed, so running Berth needs no Node and no CDN; this script
# is only for updating them. Versions are pinned here.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=2.0.11
UPLOT=1.6.32
dest=static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # package version
    (cd "$work" && npm pack --silent "$1@$2" >/dev/null && mkdir -p "$1" && tar -xzf "$1"-*.tgz -C "$1" --strip-components=1)
}

fetch htmx.org "$HTMX"
mkdir -p "$dest/htmx"
cp "$work/htmx.org/dist/htmx.min.js" "$dest/htmx/htmx.min.js"
cp "$work/htmx.org/LICENSE" "$dest/htmx/LICENSE"
echo "htmx.org $HTMX (https://www.npmjs.com/package/htmx.org)" >"$dest/htmx/VERSION"

fetch uplot "$UPLOT"
mkdir -p "$dest/uplot"
cp "$work/uplot/dist/uPlot.iife.min.js" "$dest/uplot/uPlot.iife.min.js"
cp "$work/uplot/dist/uPlot.min.css" "$dest/uplot/uPlot.min.css"
cp "$work/uplot/LICENSE" "$dest/uplot/LICENSE"
echo "uplot $UPLOT (https://www.npmjs.com/package/uplot)" >"$dest/uplot/VERSION"
