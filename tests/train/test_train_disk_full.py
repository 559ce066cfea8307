"""A full disk while training writes its checkpoints or the model: one sentence naming the folder
and its free space, and no partial file under a final name (a real, small tmpfs)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.failure import StepError
from gtsrb.train import checkpoint
from testkit.disk import small_disk
from testkit.evaluate import save_tiny_model, train_tiny_net

# MXNet's writer keeps no errno: "the write was cut short"; Python's: the OS reason. Then the free space.
WRITE_FAILED = re.compile(r"\((No space left on device|the write was cut short); \d+\.\d MB free there\)")


@pytest.fixture
def disk_64k(tmp_path: Path) -> Iterator[Path]:
    yield from small_disk(tmp_path / "disk", "64k")  # smaller than the tiny net's 88 KB of weights


@pytest.fixture
def disk_400k(tmp_path: Path) -> Iterator[Path]:
    yield from small_disk(tmp_path / "disk", "400k")  # one checkpoint (weights + Adam state) fits, not two


@pytest.fixture(scope="module")
def net() -> mx.gluon.HybridBlock:
    return train_tiny_net(GTSRB_NUM_CLASSES, steps=2)


def test_exporting_to_a_full_disk_leaves_no_model_file(net, disk_64k: Path) -> None:
    model_dir = disk_64k / "model"
    with pytest.raises(StepError) as raised:
        save_tiny_model(model_dir, net)
    message = str(raised.value)
    assert message.startswith(f"{model_dir}: cannot write the model (")
    assert WRITE_FAILED.search(message) and "\n" not in message
    assert list(model_dir.iterdir()) == []  # no model-0000.params or model-symbol.json, no leftovers


def test_a_checkpoint_on_a_full_disk_keeps_the_earlier_one(net, disk_400k: Path) -> None:
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    with mx.autograd.record():
        loss = net(mx.nd.zeros((2, 3, 16, 16))).sum()
    loss.backward()
    trainer.step(2)  # Adam's state exists: a checkpoint is ~3x the weights
    folder = disk_400k / "checkpoints"
    first = checkpoint.save(folder, net, trainer, checkpoint.TrainingState(epochs_done=1, best_checkpoint="step-0001-000000"))
    with pytest.raises(StepError) as raised:
        checkpoint.save(folder, net, trainer, checkpoint.TrainingState(epochs_done=2, best_checkpoint="step-0001-000000"))
    message = str(raised.value)
    assert message.startswith(f"{folder}: cannot write the checkpoint step-0002-000000 (")
    assert WRITE_FAILED.search(message) and "\n" not in message
    assert sorted(p.name for p in folder.iterdir()) == [first.name]  # no half-written checkpoint or temp folder
    assert checkpoint.is_complete(first) and checkpoint.load_state(first).epochs_done == 1


def test_the_model_files_appear_only_complete(net, tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "model", net)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        [contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE,
         contract.HYPERPARAMETERS_FILE, contract.HISTORY_FILE])
