"""Early stopping: training stops after `patience` epochs without a better val_acc, and the
exported model is the best epoch's, not the last one's."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx

from gtsrb.common import contract
from gtsrb.common.failure import run_step
from gtsrb.common.model_io import load_model
from gtsrb.common.records import predict
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train.step import train
from testkit.train import FAST_HPS


def test_early_stopping_exports_the_best_epoch(base_dir: Path, channels: dict[str, Path]) -> None:
    hps = {**FAST_HPS, "epochs": "12", "early_stopping_patience": "1", "fit_on_validation": "False"}  # early stopping needs held-out data
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(base_dir / "model")]
    assert run_step(lambda: train(argv), "failure") == 0
    history = json.loads((base_dir / "model" / contract.HISTORY_FILE).read_text())
    accs = [h["val_acc"] for h in history]
    assert 2 <= len(history) < 12  # stopped early ...
    assert accs[-1] <= max(accs[:-1])  # ... right after an epoch that did not improve
    model = load_model(base_dir / "model", mx.cpu())
    labels, probs = predict(model.net, contract.record_files(channels["validation"], "validation"), model.preprocessing, 32, mx.cpu())
    assert float((probs.argmax(axis=1) == labels).mean()) == max(accs)  # the best epoch's weights
