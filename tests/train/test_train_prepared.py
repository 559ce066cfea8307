"""The train step on the prepare step's real output: the generated demo set and the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import contract
from gtsrb.common.failure import run_step
from gtsrb.common.model_io import load_model
from gtsrb.common.records import predict
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train.step import train
from testkit.train import FAST_HPS

PREPARED_SIZE = 32  # the CPU preset's input size, which prepared_demo packs for


@pytest.mark.slow
def test_trains_on_prepared_channels(prepared: Path, base_dir: Path) -> None:
    argv = [*hyperparameters_to_args({**FAST_HPS, "batch_size": "32"}), "--train", str(prepared / contract.TRAIN_CHANNEL),
            "--validation", str(prepared / contract.VALIDATION_CHANNEL), "--model-dir", str(base_dir / "model")]
    assert run_step(lambda: train(argv), "failure") == 0, (base_dir / "output" / "failure").read_text()
    history = json.loads((base_dir / "model" / contract.HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]  # it learns something on real-format data
    model = load_model(base_dir / "model", mx.cpu())
    assert model.preprocessing.image_size == PREPARED_SIZE
    val = contract.record_files(prepared / contract.VALIDATION_CHANNEL, contract.VALIDATION_CHANNEL)
    labels, probs = predict(model.net, val, model.preprocessing, 64, mx.cpu())
    assert float((probs.argmax(axis=1) == labels).mean()) == history[-1]["val_acc"]  # no early stopping: the last epoch
