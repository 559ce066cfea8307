"""What the SDK's local mode needs before a step starts, each missing piece named in one sentence.

The SDK runs `docker compose` (v2) or else `docker-compose`; a missing engine, compose or image
would otherwise surface as a traceback from deep inside it, or as a pull from a registry that
is not there.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from gtsrb.common.failure import StepError

ENGINE_HINT = ("install Docker Engine, or as root start the project's private engine with "
               "`containers/ci/engine.sh start` and `source /tmp/gtsrb-engine/env` (docs/local-pipeline.md)")


def check_engine() -> None:
    """The `docker` command (the one on PATH, which the SDK calls) and an engine answering it."""
    if shutil.which("docker") is None:
        raise StepError(f"make sagemaker-local needs the `docker` command, which is not on PATH: {ENGINE_HINT}.")
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=60, check=False)
    except subprocess.TimeoutExpired:
        info = None
    if info is None or info.returncode != 0 or not info.stdout.strip():
        where = os.environ.get("DOCKER_HOST") or "the default socket"
        raise StepError(f"no Docker engine answers at {where} (`docker info` failed): {ENGINE_HINT}.")


def check_compose() -> list[str]:
    """The compose command the SDK will use (its own lookup: `docker compose` v2, else `docker-compose`)."""
    from sagemaker.core.local.image import _SageMakerContainer  # private, but the SDK is pinned exactly

    try:
        return _SageMakerContainer._get_compose_cmd_prefix()
    except ImportError:
        raise StepError("the SageMaker SDK's local mode needs Docker Compose, and neither `docker compose` (v2) "
                        "nor `docker-compose` is installed: install the compose plugin or Debian's "
                        "`docker-compose` package (apt-get install docker-compose).") from None


def check_image(uri: str) -> None:
    """The image exists in the local engine (local mode would otherwise try to pull it)."""
    found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", uri], capture_output=True, text=True,
                           timeout=60, check=False)
    if found.returncode != 0:
        repository, _, tag = uri.rpartition(":")
        raise StepError(f"image {uri} is not in the local Docker engine, and nothing is pulled: build it with "
                        f"`make build VARIANT=cpu BAKE_WEIGHTS=0 TAG={tag}`, or pass TAG= of one that "
                        f"`docker images {repository}` lists.")


def check_all(image: str) -> list[str]:
    """Engine, compose and image, in the order a user fixes them; returns the compose command."""
    check_engine()
    compose = check_compose()
    check_image(image)
    return compose
