"""Fixtures for the evaluate step (helpers in testkit/evaluate.py)."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_CLASS_NAMES
from gtsrb.common.model_io import archive_model
from testkit.evaluate import TEST_RECORDS, make_images, save_tiny_model, train_tiny_net, write_split


@pytest.fixture(scope="session")
def test_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with test.rec/.idx/.lst of TEST_RECORDS images of CLASSES."""
    folder = tmp_path_factory.mktemp("test-split")
    write_split(folder, *make_images(TEST_RECORDS, seed=7))
    return folder


@pytest.fixture(scope="session")
def trained_net() -> mx.gluon.HybridBlock:
    """The tiny net with one output per GTSRB class."""
    return train_tiny_net(len(GTSRB_CLASS_NAMES))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, trained_net: mx.gluon.HybridBlock) -> Path:
    """The trained tiny net saved as a model directory."""
    return save_tiny_model(tmp_path_factory.mktemp("model") / "model", trained_net)


@pytest.fixture(scope="session")
def model_archive(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """The same model as SageMaker hands it over: a folder holding model.tar.gz."""
    folder = tmp_path_factory.mktemp("model-input")
    archive_model(model_dir, folder / contract.MODEL_ARCHIVE)
    return folder


@pytest.fixture
def sagemaker_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp /opt/ml, so failure messages land where a test can read them."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt-ml"))
    return tmp_path / "opt-ml"
