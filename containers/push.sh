#!/usr/bin/env bash
# `make push`: push the built image(s) of VARIANT (tags TAG and latest) to ECR or to REGISTRY.
#   ECR (REGISTRY empty): account from STS, region AWS_REGION; repositories created when missing
#   (scan on push; IMMUTABLE=1 makes new ones tag-immutable, and then only TAG is pushed).
#   REGISTRY=host:port: any other registry (CI pushes to a local Debian docker-registry).
# Prints the image URIs the pipeline will use. Env: PY, DOCKER, VARIANT, TAG, REGISTRY, AWS_REGION.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}
VARIANT=${VARIANT:-gpu}
images() { "$PY" -m pipelines.images "$@"; }

registry=${REGISTRY:-}
if [ -z "$registry" ]; then
  repos=()
  for v in $VARIANT; do repos+=(--repository "$(images repository --variant "$v")"); done
  registry=$("$PY" containers/ecr.py --region "${AWS_REGION:?set AWS_REGION}" --docker "$DOCKER" \
             ${IMMUTABLE:+--immutable} "${repos[@]}" | tail -n1)
fi

tags=("$TAG")
[ -n "${IMMUTABLE:-}" ] || tags+=(latest)
uris=()
for v in $VARIANT; do
  local_image=$(images uri --variant "$v" --tag "$TAG")
  "$DOCKER" image inspect "$local_image" >/dev/null 2>&1 \
    || { echo "push: $local_image is not built here; run: make build VARIANT=$v" >&2; exit 1; }
  for t in "${tags[@]}"; do
    uri=$(images uri --variant "$v" --registry "$registry" --tag "$t")
    echo ">> pushing $uri"
    "$DOCKER" tag "$local_image" "$uri"
    "$DOCKER" push --quiet "$uri" >/dev/null
  done
  uris+=("$v: $(images uri --variant "$v" --registry "$registry" --tag "$TAG")")
done
echo ">> pushed; the pipeline's images (make upsert / definition take them from these names):"
printf '   %s\n' "${uris[@]}"
