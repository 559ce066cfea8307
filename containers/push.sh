#!/usr/bin/env bash
# `make push`: push the built image(s) of VARIANT under TAG to ECR or to REGISTRY, idempotently.
#   ECR (REGISTRY empty): the account is pipelines.images.image_account (IMAGE_ACCOUNT, else the
#   account of ROLE_ARN: the one the pipeline definition names), region AWS_REGION; repositories
#   created when missing (scan on push; IMMUTABLE=1 makes new ones tag-immutable).
#   REGISTRY=host:port: any other registry (CI pushes to a local Debian docker-registry).
# The same image already under TAG: skipped. A different image under an immutable tag: one clear
# error. `latest` only with LATEST=1 (never on an immutable repository: it would have to move).
# Prints the image URIs the pipeline will use. Env: PY, DOCKER, VARIANT, TAG, REGISTRY,
# AWS_REGION, ROLE_ARN, IMAGE_ACCOUNT, IMMUTABLE, LATEST.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DOCKER=${DOCKER:-docker}
VARIANT=${VARIANT:-gpu}
images() { "$PY" -m pipelines.images "$@"; }

registry=${REGISTRY:-}
ecr=()
if [ -z "$registry" ]; then
  account=$(images account --role "${ROLE_ARN:-}" --account "${IMAGE_ACCOUNT:-}")
  repos=()
  for v in $VARIANT; do repos+=(--repository "$(images repository --variant "$v")"); done
  registry=$("$PY" containers/ecr.py --region "${AWS_REGION:?set AWS_REGION}" --account "$account" \
             --docker "$DOCKER" ${IMMUTABLE:+--immutable} "${repos[@]}" | tail -n1)
  ecr=(--region "$AWS_REGION")
fi

tags=("$TAG")
if [ -n "${LATEST:-}" ]; then
  [ -z "${IMMUTABLE:-}" ] || { echo "push: LATEST=1 with IMMUTABLE=1: an immutable latest cannot move" >&2; exit 1; }
  tags+=(latest)
fi
uris=()
for v in $VARIANT; do
  local_image=$(images uri --variant "$v" --tag "$TAG")
  local_id=$("$DOCKER" image inspect --format '{{.Id}}' "$local_image" 2>/dev/null) \
    || { echo "push: $local_image is not built here; run: make build VARIANT=$v" >&2; exit 1; }
  for t in "${tags[@]}"; do
    uri=$(images uri --variant "$v" --registry "$registry" --tag "$t")
    action=$("$PY" containers/published.py --registry "$registry" --repository "$(images repository --variant "$v")" \
             --tag "$t" --local-id "$local_id" "${ecr[@]}" ${IMMUTABLE:+--immutable})
    if [ "$action" = skip ]; then
      echo ">> $uri already holds this image ($local_id): skipped"
      continue
    fi
    echo ">> pushing $uri"
    "$DOCKER" tag "$local_image" "$uri"
    "$DOCKER" push --quiet "$uri" >/dev/null
  done
  uris+=("$v: $(images uri --variant "$v" --registry "$registry" --tag "$TAG")")
done
echo ">> pushed; the pipeline's images (make upsert / definition take them from these names):"
printf '   %s\n' "${uris[@]}"
