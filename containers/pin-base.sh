#!/usr/bin/env bash
# `make pin-base`: pin the Dockerfile's base image (ARG BASE_IMAGE, a dated tag) to the digest the
# registry serves for that tag now, as `name:tag@sha256:...`. Needs the registry (Docker Hub);
# changes nothing when the digest cannot be read. Env: DOCKER, DOCKERFILE.
set -euo pipefail
DOCKER=${DOCKER:-docker}
DOCKERFILE=${DOCKERFILE:-containers/Dockerfile}

base=$(sed -n 's/^ARG BASE_IMAGE=\([^@]*\).*/\1/p' "$DOCKERFILE" | head -n1)
[ -n "$base" ] || { echo "pin-base: no 'ARG BASE_IMAGE=' line in $DOCKERFILE" >&2; exit 1; }
echo ">> pin-base: reading the digest of $base from its registry"
digest=""
if "$DOCKER" buildx version >/dev/null 2>&1; then
  digest=$("$DOCKER" buildx imagetools inspect "$base" --format '{{.Manifest.Digest}}' 2>/dev/null || true)
fi
if [ -z "$digest" ] && "$DOCKER" pull --quiet "$base" >/dev/null 2>&1; then
  # The repo digest recorded by a pull is the one the registry served for the tag.
  digest=$("$DOCKER" image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$base" \
           | sed -n "s|^${base%:*}@||p" | head -n1)
fi
if ! [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "pin-base: could not read a digest for $base (registry unreachable?); $DOCKERFILE unchanged" >&2
  exit 1
fi
sed -i "s|^ARG BASE_IMAGE=.*|ARG BASE_IMAGE=$base@$digest|" "$DOCKERFILE"
echo ">> pin-base: $DOCKERFILE now builds FROM $base@$digest"
