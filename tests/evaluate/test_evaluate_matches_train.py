"""The accuracy the train step logs on a split equals what evaluate reports on that same split.

Both go through gtsrb.common.records.predict, but train validates its live Gluon network and
evaluate loads the exported model: this test runs the real train step (`python -m gtsrb.train`)
and the real evaluate step and compares the numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from gtsrb.evaluate.step import evaluate
from testkit.evaluate import TEST_RECORDS, make_images, write_split

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = 32  # the fast runs' input (the CPU preset's is 40)
# A short CPU-preset run; batch 16 does not divide the 37 validation records either.
HPS = {"preset": "cpu", "image_size": str(IMAGE_SIZE), "epochs": "2", "batch_size": "16", "lr": "0.05", "warmup_epochs": "0.5"}


def as_test_split(split_files: contract.RecordFiles, folder: Path) -> Path:
    """A folder where the validation split's files appear as test.rec/.idx (symlinks)."""
    folder.mkdir()
    test = contract.record_files(folder, "test")
    for source, target in ((split_files.rec, test.rec), (split_files.idx, test.idx), (split_files.lst, test.lst)):
        target.symlink_to(source)
    return folder


def run_train(train: Path, validation: Path, model_dir: Path, base: Path) -> str:
    """Run the real train entry point; return its stdout (the epoch lines)."""
    argv = [sys.executable, "-m", "gtsrb.train", "--train", str(train), "--validation", str(validation),
            "--model-dir", str(model_dir), "--num-gpus", "0"]
    argv += [item for key, value in HPS.items() for item in (f"--{key}", value)]
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_train_logged_accuracy_equals_evaluated_accuracy(tmp_path: Path) -> None:
    side = stored_size(IMAGE_SIZE)
    write_split(tmp_path / "train", *make_images(96, seed=11, side=side), split=contract.TRAIN_CHANNEL)
    val_files = write_split(tmp_path / "validation", *make_images(TEST_RECORDS, seed=12, side=side),
                            split=contract.VALIDATION_CHANNEL)
    stdout = run_train(tmp_path / "train", tmp_path / "validation", tmp_path / "model", tmp_path / "opt-ml")

    # Without early stopping (the CPU preset) the model is the last epoch's weights.
    history = json.loads((tmp_path / "model" / contract.HISTORY_FILE).read_text())
    best = history[-1]
    logged = {int(m[1]): float(m[2]) for m in re.finditer(r"epoch=(\d+)/\d+ .*?\bval_acc=(\S+)", stdout)}
    assert logged[best["epoch"]] == pytest.approx(best["val_acc"], rel=1e-5)  # the line shows 6 digits

    doc = evaluate(tmp_path / "model", as_test_split(val_files, tmp_path / "as-test"), tmp_path / "out", batch_size=128)
    assert contract.json_get(doc, contract.ACCURACY_JSON_PATH) == pytest.approx(best["val_acc"], abs=1e-12)
    assert doc[contract.EVALUATION_DETAILS_KEY]["records"] == TEST_RECORDS
