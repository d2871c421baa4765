#!/usr/bin/env bash
# Build Berth's test images on the local engine and load them into test hosts (docs/architecture.md#the-test-bed).
#
#   testbed/images.sh [ENGINE_URL...]
#
# Nothing can be pulled here, so every image is FROM scratch plus Debian's static busybox, built
# from testbed/images/<name>/ with /bin/busybox copied into a temporary context. An image is only
# rebuilt when its source changed (a hash of the context, the busybox binary, the build arguments
# and the base image is kept as a label), and only loaded into an engine that lacks that image ID,
# so a second run takes well under a second.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILDER=${BERTH_TESTBED_BUILDER:-unix:///var/run/docker.sock}
BUSYBOX=/bin/busybox
SOURCE_LABEL=org.berth.testbed.source

# tag | context folder under images/ | build arguments | stage. Images of one stage build in
# parallel; crash and root are built FROM berth-test/web:v1, so they wait for stage 1.
IMAGES=(
  "berth-test/web:v1|web|VERSION=v1|1"
  "berth-test/web:v2|web|VERSION=v2|1"
  "berth-test/nobind:v1|nobind||1"
  "berth-test/crash:v1|crash||2"
  "berth-test/root:v1|root||2"
)

log() { echo "images: $*" >&2; }

builder() { docker -H "$BUILDER" "$@"; }

image_id() { # engine tag -> image ID, or nothing
  docker -H "$1" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true
}

# What an image is made of: its context (names, modes, contents), busybox, build arguments and the
# ID of a local base image (crash builds on web:v1). Timestamps are left out on purpose.
source_hash() {
  local context=$1 args=$2 base
  base=$(sed -n 's/^FROM[[:space:]]\+\([^[:space:]]\+\).*/\1/p' "$context/Dockerfile" | head -1)
  {
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$context" -cf - .
    sha256sum "$BUSYBOX"
    echo "args=$args"
    [[ $base == scratch ]] || echo "base=$(image_id "$BUILDER" "$base")"
  } | sha256sum | cut -d' ' -f1
}

build_image() {
  local tag=$1 name=$2 args=$3 context hash current tmp arg
  local -a build_args=()
  context=$HERE/images/$name
  hash=$(source_hash "$context" "$args")
  current=$(builder image inspect --format "{{index .Config.Labels \"$SOURCE_LABEL\"}}" "$tag" 2>/dev/null || true)
  [[ $current == "$hash" ]] && return 0
  for arg in $args; do build_args+=(--build-arg "$arg"); done
  tmp=$(mktemp -d)
  cp -a "$context/." "$tmp/"
  cp "$BUSYBOX" "$tmp/busybox"
  log "building $tag"
  # The CLI has no buildx here; the classic builder is the one that runs RUN steps on this engine
  # and resolves FROM berth-test/web:v1 locally instead of asking a registry.
  if ! DOCKER_BUILDKIT=0 builder build --quiet --label "$SOURCE_LABEL=$hash" "${build_args[@]}" -t "$tag" "$tmp" \
    >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    return 1
  fi
  rm -rf "$tmp" "$tmp.log"
}

# The image a tag pointed to before a rebuild or load is left untagged; drop such test images only.
prune_superseded() {
  docker -H "$1" image prune --force --filter "label=$SOURCE_LABEL" >/dev/null 2>&1 || true
}

# docker save | docker load of the images whose ID the engine does not have yet.
load_into() {
  local engine=$1 entry tag want
  local -a missing=()
  for entry in "${IMAGES[@]}"; do
    tag=${entry%%|*}
    want=$(image_id "$BUILDER" "$tag")
    [[ $(image_id "$engine" "$tag") == "$want" ]] || missing+=("$tag")
  done
  ((${#missing[@]})) || return 0
  log "loading ${missing[*]} into $engine"
  builder save "${missing[@]}" | docker -H "$engine" load --quiet >/dev/null
  prune_superseded "$engine"
}

wait_all() { # pid... -> fails if any of them failed
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return "$failed"
}

main() {
  local entry tag name args stage want engine
  local -a pids=()
  [[ -x $BUSYBOX ]] || { echo "images: $BUSYBOX is missing: apt-get install busybox-static" >&2; exit 1; }
  for want in 1 2; do
    pids=()
    for entry in "${IMAGES[@]}"; do
      IFS='|' read -r tag name args stage <<<"$entry"
      [[ $stage == "$want" ]] || continue
      build_image "$tag" "$name" "$args" &
      pids+=($!)
    done
    wait_all "${pids[@]}"
  done
  # Only once every build is done: a build's image is untagged for a moment before `-t` applies.
  prune_superseded "$BUILDER"
  pids=()
  for engine in "$@"; do
    load_into "$engine" &
    pids+=($!)
  done
  wait_all "${pids[@]}"
}

main "$@"
