"""Fixtures of the train step's tests (helpers in testkit/train.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from testkit.train import IMAGE_SIZE, balanced_labels, write_split


@pytest.fixture(scope="session")
def channels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only `train` (40/class) and `validation` (12/class) channel folders at 36 px."""
    root = tmp_path_factory.mktemp("channels")
    side = stored_size(IMAGE_SIZE)
    write_split(root / contract.TRAIN_CHANNEL, contract.TRAIN_CHANNEL, balanced_labels(40), side, seed=1)
    write_split(root / contract.VALIDATION_CHANNEL, contract.VALIDATION_CHANNEL, balanced_labels(12), side, seed=2)
    return {contract.TRAIN_CHANNEL: root / contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL: root / contract.VALIDATION_CHANNEL}


@pytest.fixture
def base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SAGEMAKER_BASE_DIR (the /opt/ml of one job) for in-process runs."""
    base = tmp_path / "opt_ml"
    base.mkdir()
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name in ("SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_CHANNEL_PRETRAINED", "SM_NUM_GPUS", "SM_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    return base
