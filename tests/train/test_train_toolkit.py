"""The train step through the real sagemaker-training toolkit, as the GPU image runs it.

It trains on the toy channels (6 separable classes) so that "it learns" is a sharp assertion in
3 short epochs; the 43-class prepared demo set needs far more epochs to get well above chance
(~14% after 6), so test_train_prepared.py runs the step on the prepare step's real output instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_CLASS_NAMES
from gtsrb.common.model_io import load_model
from gtsrb.common.records import predict
from gtsrb.train.epoch_log import EPOCH_FIELDS, METRIC_DEFINITIONS
from gtsrb.train.hyperparameters import CPU_PRESET
from testkit.train import FAST_HPS, NUM_TOY_CLASSES, ROOT, write_job_config

TOOLKIT = Path(sys.executable).parent / "train"  # the toolkit's console script, the image's ENTRYPOINT
TRAIN_PY = "from gtsrb.train.cli import main\nmain()\n"  # what the image puts in /opt/ml/code/train.py


def run_toolkit(base: Path) -> subprocess.CompletedProcess:
    """Run the toolkit's `train` with SAGEMAKER_BASE_DIR=base and SAGEMAKER_PROGRAM=train.py."""
    (base / "code").mkdir(parents=True, exist_ok=True)
    (base / "code" / "train.py").write_text(TRAIN_PY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env.update(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_PROGRAM="train.py", PYTHONUNBUFFERED="1")
    return subprocess.run([str(TOOLKIT)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_toolkit_trains_and_writes_the_model(tmp_path: Path, channels: dict[str, Path]) -> None:
    base = tmp_path / "opt_ml"
    hps = {**FAST_HPS, "amp": "True"}  # a boolean as SageMaker sends it (bfloat16 AMP on CPU)
    write_job_config(base, hps, channels)
    done = run_toolkit(base)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # One epoch line per epoch on stdout, parsed by the SageMaker metric regexes.
    lines = [row for row in done.stdout.splitlines() if re.search(r"\bepoch=\d+/3 train_loss=", row)]
    assert len(lines) == 3
    for definition in METRIC_DEFINITIONS:
        assert re.search(definition["Regex"], lines[-1]), definition["Name"]

    # The model directory: everything evaluation needs, and a model that learned.
    model_dir = base / "model"
    for name in (contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE,
                 contract.HYPERPARAMETERS_FILE, contract.HISTORY_FILE):
        assert (model_dir / name).is_file(), name
    history = json.loads((model_dir / contract.HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3] and set(EPOCH_FIELDS) <= set(history[0])
    saved_hps = json.loads((model_dir / contract.HYPERPARAMETERS_FILE).read_text())
    assert saved_hps["model"] == CPU_PRESET["model"] and saved_hps["epochs"] == 3 and saved_hps["amp"] is True
    assert json.loads((model_dir / contract.CLASSES_FILE).read_text()) == list(GTSRB_CLASS_NAMES)
    last = history[-1]["val_acc"]
    assert last >= 0.8 > 3 / NUM_TOY_CLASSES  # chance is 1/6

    # Evaluation on the same split with the exported model reports the last epoch's number (the
    # CPU preset does not stop early, so the last epoch is the model).
    model = load_model(model_dir, mx.cpu())
    val = contract.record_files(channels[contract.VALIDATION_CHANNEL], contract.VALIDATION_CHANNEL)
    labels, probs = predict(model.net, val, model.preprocessing, 32, mx.cpu())
    assert len(labels) == NUM_TOY_CLASSES * 12
    assert float((probs.argmax(axis=1) == labels).mean()) == pytest.approx(last, abs=1e-9)
    assert not (base / "output" / "failure").exists()
    assert list((base / "checkpoints").glob("step-*/state.json"))
