"""Fixtures for the image tests: the repository's containers/ scripts, the Docker client, the image.

Tests marked `containers` need the Docker engine, image and registry that `make test-containers`
provides (GTSRB_TEST_IMAGE, REGISTRY, DOCKER_HOST); outside it they skip, saying so.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def docker() -> str:
    """The Docker client the Makefile uses (DOCKER), e.g. the engine's own /usr/bin/docker."""
    return os.environ.get("DOCKER", "docker")


@pytest.fixture(scope="session")
def image() -> str:
    """The CPU image under test, built by `make test-containers`."""
    name = os.environ.get("GTSRB_TEST_IMAGE")
    if not name:
        pytest.skip("needs a built image and a Docker engine: run `make test-containers`")
    return name


@pytest.fixture(scope="session")
def registry() -> str:
    """host:port of the local registry that containers/ci/engine.sh started."""
    host = os.environ.get("REGISTRY")
    if not host:
        pytest.skip("needs the local registry of `make test-containers`")
    return host
