"""Fixtures for the model server: tiny trained models (tests/evaluate's helpers) and a running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtsrb.common.classes import GTSRB_CLASS_NAMES
from testkit.evaluate import make_images, save_tiny_model, train_tiny_net
from testkit.serve import png_bytes, running_server


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny net trained for a second, saved as the train step saves models (16 px input)."""
    return save_tiny_model(tmp_path_factory.mktemp("serve-model") / "model", train_tiny_net(len(GTSRB_CLASS_NAMES)))


@pytest.fixture(scope="session")
def sample_images() -> list[bytes]:
    """Eight PNG files of the tiny model's kind (18 px squares)."""
    images, _ = make_images(8, seed=11)
    return [png_bytes(image) for image in images]


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running server (two workers) on the tiny model."""
    with running_server(tiny_model, tmp_path_factory.mktemp("server") / "server.log") as srv:
        yield srv
