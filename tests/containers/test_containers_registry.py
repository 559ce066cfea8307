"""`make push` to a real (local Debian) registry, pull back, and `make pin-base` against it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipelines import images
from testkit.containers import CONTAINERS, REPO, run

pytestmark = pytest.mark.containers
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = f"{DOCKER_MANIFEST}, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


def manifest(registry: str, repository: str, reference: str) -> tuple[str, str, dict]:
    """(media type, digest, body) the registry serves for repository:reference."""
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{reference}",
                                     headers={"Accept": ACCEPT}, method="GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return (response.headers["Content-Type"], response.headers["Docker-Content-Digest"],
                json.loads(response.read()))


def image_id(docker: str, ref: str) -> str:
    """The image's config digest (equal for the same image wherever it came from)."""
    result = run([docker, "image", "inspect", "--format", "{{.Id}}", ref])
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_make_push_pull_round_trip_with_docker_media_types(docker: str, image: str, registry: str) -> None:
    tag = image.rsplit(":", 1)[1]
    pushed = run(["make", "--no-print-directory", "push", "VARIANT=cpu", f"TAG={tag}", f"REGISTRY={registry}",
                  f"DOCKER={docker}"], cwd=REPO, timeout=1200)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    uri = images.image_uri(registry, "cpu", tag)
    assert f"cpu: {uri}" in pushed.stdout  # the URI the pipeline will use is printed

    repository = images.repository("cpu")
    media_type, digest, body = manifest(registry, repository, tag)
    assert media_type == DOCKER_MANIFEST and body["mediaType"] == DOCKER_MANIFEST  # ECR/SageMaker-safe
    with pytest.raises(urllib.error.HTTPError):  # no unconditional `latest`
        manifest(registry, repository, "latest")
    again = run(["make", "--no-print-directory", "push", "VARIANT=cpu", f"TAG={tag}", f"REGISTRY={registry}",
                 f"DOCKER={docker}", "IMMUTABLE=1"], cwd=REPO, timeout=1200)
    assert again.returncode == 0 and "already holds this image" in again.stdout, again.stdout + again.stderr

    local_id = image_id(docker, image)
    assert run([docker, "rmi", uri]).returncode == 0
    pulled = run([docker, "pull", uri], timeout=1200)
    assert pulled.returncode == 0, pulled.stderr
    assert image_id(docker, uri) == local_id  # the very image the other tests ran


def test_a_different_image_under_an_immutable_tag_is_a_clear_error(docker: str, image: str, registry: str) -> None:
    base = os.environ.get("BASE_IMAGE") or pytest.skip("needs BASE_IMAGE from containers/ci/engine.sh")
    tag = "immutable-test"
    for source in (image, base):  # first push, then another image under the same tag
        assert run([docker, "tag", source, images.image_uri("", "cpu", tag)]).returncode == 0
        pushed = run(["make", "--no-print-directory", "push", "VARIANT=cpu", f"TAG={tag}", f"REGISTRY={registry}",
                      f"DOCKER={docker}", "IMMUTABLE=1"], cwd=REPO, timeout=1200)
    assert pushed.returncode != 0
    assert "already holds a different image" in pushed.stderr and "the tag is immutable" in pushed.stderr


def test_pin_base_writes_the_digest_the_registry_serves(docker: str, registry: str, tmp_path: Path) -> None:
    base = os.environ.get("BASE_IMAGE") or pytest.skip("needs BASE_IMAGE from containers/ci/engine.sh")
    remote = f"{registry}/{base}"
    assert run([docker, "tag", base, remote]).returncode == 0
    assert run([docker, "push", remote], timeout=600).returncode == 0
    name, tag = remote.rsplit(":", 1)
    served = manifest(registry, name.split("/", 1)[1], tag)[1]
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"ARG BASE_IMAGE={remote}\nFROM ${{BASE_IMAGE}}\n")
    env = {**os.environ, "DOCKER": docker, "DOCKERFILE": str(dockerfile)}
    result = run([str(CONTAINERS / "pin-base.sh")], env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert dockerfile.read_text().splitlines()[0] == f"ARG BASE_IMAGE={remote}@{served}"
    # Pinning again keeps the tag and the same digest.
    assert run([str(CONTAINERS / "pin-base.sh")], env=env, timeout=600).returncode == 0
    assert dockerfile.read_text().splitlines()[0] == f"ARG BASE_IMAGE={remote}@{served}"


def test_pin_base_changes_nothing_without_a_registry(docker: str, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    text = "ARG BASE_IMAGE=127.0.0.1:9/debian:bookworm-20250520-slim\nFROM ${BASE_IMAGE}\n"
    dockerfile.write_text(text)
    result = run([str(CONTAINERS / "pin-base.sh")], env={**os.environ, "DOCKER": docker, "DOCKERFILE": str(dockerfile)})
    assert result.returncode == 1 and "unchanged" in result.stderr
    assert dockerfile.read_text() == text
