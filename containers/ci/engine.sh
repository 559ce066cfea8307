#!/usr/bin/env bash
# A throw-away Docker engine (+ local registry + Debian base image) for CI and `make test-containers`.
#
#   containers/ci/engine.sh run -- CMD...   start, run CMD with DOCKER_HOST/REGISTRY set, always stop
#   containers/ci/engine.sh start | stop    the same in two halves (stop also deletes the state)
#   containers/ci/engine.sh env             print the variables CMD gets (for a shell: eval)
#
# Storage: overlay2 where the kernel mounts overlayfs (layers shared), else vfs; STORAGE_DRIVER=
# forces one.
#
# Works on a fresh Debian machine as root: installs docker.io, debootstrap, docker-registry and docker-compose
# with apt when missing. No registry of base images is reachable here, so the base image named in
# the Dockerfile (ARG BASE_IMAGE, digest stripped) is built with debootstrap and `docker import`.
# Where a Docker engine already answers (a developer's laptop), it is used and left running.
set -euo pipefail

ENGINE_DIR=${ENGINE_DIR:-/tmp/gtsrb-engine}
REGISTRY_PORT=${REGISTRY_PORT:-5055}
HERE=$(cd "$(dirname "$0")" && pwd)
DOCKERFILE=${DOCKERFILE:-$HERE/../Dockerfile}
SOCK=$ENGINE_DIR/docker.sock

log() { echo ">> engine [${SECONDS}s]: $*" >&2; }

base_image() {  # the Dockerfile's default base, without a pinned digest (we build it ourselves)
  sed -n 's/^ARG BASE_IMAGE=\([^@]*\).*/\1/p' "$DOCKERFILE" | head -n1
}

install_tools() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v curl >/dev/null || missing+=(curl)
  # make sagemaker-local: the SageMaker SDK's local mode runs `docker compose` (v2), else `docker-compose`
  command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]} with apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wait_for() {  # wait_for SECONDS CMD...: poll until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

overlay_works() {  # can this kernel mount overlayfs on the filesystem that holds ENGINE_DIR?
  local dir="$ENGINE_DIR/overlay-probe" ok=1
  mkdir -p "$dir"/{lower,upper,work,merged}
  mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/merged" \
    2>/dev/null && { ok=0; umount "$dir/merged"; }
  rm -rf "$dir"
  return $ok
}

storage_driver() {  # STORAGE_DRIVER, else overlay2 where the kernel allows it, else vfs
  if [ -n "${STORAGE_DRIVER:-}" ]; then echo "$STORAGE_DRIVER"
  elif overlay_works; then echo overlay2
  else echo vfs
  fi
}

check_disk() {  # check_disk DRIVER: fail now, in one sentence, if the images and the tests cannot fit
  # Measured (docs/images.md): overlay2 ~9 GB (both images, the tests' containers and the GPU wheels
  # unpacked by check_gpu_libs); vfs copies the image for every layer (~43 GB for the GPU image).
  local need=${ENGINE_MIN_FREE_GB:-} free
  [ -n "$need" ] || if [ "$1" = vfs ]; then need=50; else need=10; fi
  free=$(df -Pk "$ENGINE_DIR" | awk 'NR == 2 {print int($4 / 1048576)}')
  if [ "$free" -lt "$need" ]; then
    log "$ENGINE_DIR has ${free} GB free; the images and the container tests need ~${need} GB with the $1 driver: free some space (ENGINE_DIR= picks another disk, ENGINE_MIN_FREE_GB= the limit)"
    exit 1
  fi
}

start_dockerd() {
  mkdir -p "$ENGINE_DIR/data"
  local driver; driver=$(storage_driver)
  check_disk "$driver"
  log "starting dockerd ($driver driver, no bridge) on $SOCK"
  # overlay2 shares layers (the GPU image costs its size); vfs copies the whole image for every
  # layer (~43 GB for the GPU image) but works in any container/VM: the fallback.
  # No bridge/iptables: builds use --network host.
  setsid dockerd --storage-driver="$driver" --bridge=none --iptables=false --ip6tables=false \
    -H "unix://$SOCK" --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" \
    --pidfile "$ENGINE_DIR/dockerd.pid" >"$ENGINE_DIR/dockerd.log" 2>&1 &
  wait_for 60 docker -H "unix://$SOCK" info || { tail -20 "$ENGINE_DIR/dockerd.log" >&2; exit 1; }
}

start_registry() {
  mkdir -p "$ENGINE_DIR/registry"
  cat >"$ENGINE_DIR/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $ENGINE_DIR/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$REGISTRY_PORT}
YML
  log "starting docker-registry on 127.0.0.1:$REGISTRY_PORT"
  setsid docker-registry serve "$ENGINE_DIR/registry.yml" >"$ENGINE_DIR/registry.log" 2>&1 &
  echo $! >"$ENGINE_DIR/registry.pid"
  wait_for 30 curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" || { tail -20 "$ENGINE_DIR/registry.log" >&2; exit 1; }
}

ensure_base() {
  local name; name=$(base_image)
  if docker image inspect "$name" >/dev/null 2>&1; then log "base $name present"; return; fi
  log "building base $name with debootstrap (Debian bookworm, minbase)"
  local root="$ENGINE_DIR/rootfs"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" >"$ENGINE_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$ENGINE_DIR/debootstrap.log" >&2; exit 1; }
  # Make it look like the official slim image: the same apt sources (with security updates), no
  # docs or man pages (now or from later installs), no apt lists or caches.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/docker"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/{man,info}/*
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$name" >/dev/null
  rm -rf "$root"
}

print_env() {
  echo "export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCK}"
  # The client that came with the engine we started: a newer `docker` without buildx cannot build.
  [ -f "$ENGINE_DIR/external" ] || echo "export DOCKER=/usr/bin/docker"
  echo "export REGISTRY=127.0.0.1:$REGISTRY_PORT"
  echo "export BASE_IMAGE=$(base_image)"
  echo "export STORAGE_DRIVER=$(docker info --format '{{.Driver}}' 2>/dev/null)"
}

start() {
  install_tools
  mkdir -p "$ENGINE_DIR"
  if [ -z "${DOCKER_HOST:-}" ] && docker info >/dev/null 2>&1; then
    log "using the Docker engine that already runs"
    : >"$ENGINE_DIR/external"
  else
    export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCK}
    docker info >/dev/null 2>&1 || start_dockerd
  fi
  curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1 || start_registry
  ensure_base
  print_env >"$ENGINE_DIR/env"
}

stop_pid() {  # stop_pid FILE: end the process whose id FILE holds (ours only), then wait for it
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  wait_for 30 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

stop() {
  log "stopping the registry and dockerd, deleting $ENGINE_DIR"
  stop_pid "$ENGINE_DIR/registry.pid"
  stop_pid "$ENGINE_DIR/dockerd.pid"
  # dockerd leaves its network namespace mounted under exec/netns: unmount what is ours first.
  awk -v dir="$ENGINE_DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l || true
  [ "${KEEP_ENGINE_DIR:-0}" = 1 ] || rm -rf "$ENGINE_DIR" || log "could not delete all of $ENGINE_DIR"
}

case "${1:-}" in
  start) start; cat "$ENGINE_DIR/env" ;;
  stop) stop ;;
  env) cat "$ENGINE_DIR/env" ;;
  run)
    shift; [ "${1:-}" = "--" ] && shift
    trap stop EXIT
    start
    # shellcheck disable=SC1091
    source "$ENGINE_DIR/env"
    "$@"
    ;;
  *) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
