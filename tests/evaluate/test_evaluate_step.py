"""The evaluate step on a model trained here: exact counts, correct metrics, a valid report, pictures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from gtsrb.common import contract
from gtsrb.common.classes import CLASS_NAMES
from gtsrb.common.failure import StepError
from gtsrb.common.model_io import load_model
from gtsrb.common.records import eval_iter
from gtsrb.evaluate import plots, report
from gtsrb.evaluate.cli import main
from gtsrb.evaluate.step import evaluate
from testkit.evaluate import BATCH_SIZE, TEST_RECORDS, to_batch

REPO = Path(__file__).resolve().parents[2]


def read_split(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image (RGB) and label of test.rec, read record by record in .idx order."""
    files = contract.record_files(folder, "test")
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    images, labels = [], []
    for key in reader.keys:
        header, bgr = mx.recordio.unpack_img(reader.read_idx(key))
        images.append(bgr[:, :, ::-1])
        labels.append(int(header.label))
    reader.close()
    return np.stack(images), np.array(labels)


def independent_predictions(model_dir: Path, test_split: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted classes computed one image at a time, without ImageRecordIter."""
    model = load_model(model_dir, mx.cpu())
    images, labels = read_split(test_split)
    logits = np.concatenate([model.net(to_batch(images[i : i + 1], model.preprocessing)).asnumpy() for i in range(len(images))])
    return labels, logits.argmax(axis=1)


@pytest.fixture(scope="module")
def evaluated(model_dir: Path, test_split: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One evaluation through the CLI with a batch size that does not divide the test set."""
    out = tmp_path_factory.mktemp("evaluation")
    assert TEST_RECORDS % BATCH_SIZE != 0
    argv = ["--model", str(model_dir), "--test", str(test_split), "--output", str(out), "--batch-size", str(BATCH_SIZE)]
    assert main(argv) == 0
    return json.loads((out / contract.EVALUATION_FILE).read_text()), out


def test_the_iterator_really_pads_the_last_batch(model_dir: Path, test_split: Path) -> None:
    """The trap the exact counting avoids: summing whole batches would count 40 rows, not 37."""
    prep = load_model(model_dir, mx.cpu()).preprocessing
    naive_rows = sum(batch.data[0].shape[0] for batch in eval_iter(contract.record_files(test_split, "test"), prep, BATCH_SIZE))
    assert naive_rows == -(-TEST_RECORDS // BATCH_SIZE) * BATCH_SIZE > TEST_RECORDS


def test_every_record_counted_once(evaluated: tuple[dict, Path]) -> None:
    doc, _ = evaluated
    cm = doc[contract.QUALITY_METRICS_KEY]["confusion_matrix"]
    assert doc[contract.EVALUATION_DETAILS_KEY]["records"] == TEST_RECORDS
    assert sum(v for row in cm.values() for v in row.values()) == TEST_RECORDS
    assert len(cm) == len(CLASS_NAMES) and all(len(row) == len(CLASS_NAMES) for row in cm.values())


def test_metrics_equal_independent_computation(evaluated: tuple[dict, Path], model_dir: Path, test_split: Path) -> None:
    doc, _ = evaluated
    labels, predicted = independent_predictions(model_dir, test_split)
    block, details = doc[contract.QUALITY_METRICS_KEY], doc[contract.EVALUATION_DETAILS_KEY]
    assert 0.5 < block["accuracy"]["value"] < 1.0  # the tiny model makes mistakes to count
    assert block["accuracy"]["value"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    assert contract.json_get(doc, contract.ACCURACY_JSON_PATH) == block["accuracy"]["value"]
    for avg, names in (("weighted", block), ("macro", details)):
        p, r, f1, _ = skm.precision_recall_fscore_support(labels, predicted, average=avg, zero_division=0)
        keys = (f"{avg}_precision", f"{avg}_recall", f"{avg}_f1")
        got = tuple(names[k]["value"] if avg == "weighted" else names[k] for k in keys)
        assert got == pytest.approx((p, r, f1), abs=1e-12)
    expected_cm = skm.confusion_matrix(labels, predicted, labels=range(len(CLASS_NAMES)))
    got_cm = np.array([[block["confusion_matrix"][str(i)][str(j)] for j in range(43)] for i in range(43)])
    np.testing.assert_array_equal(got_cm, expected_cm)


def test_report_validates_and_lists_sagemaker_metrics(evaluated: tuple[dict, Path]) -> None:
    doc, _ = evaluated
    report.validate_report(doc)
    block = doc[contract.QUALITY_METRICS_KEY]
    for name in ("accuracy", "weighted_precision", "weighted_recall", "weighted_f0_5", "weighted_f1", "weighted_f2"):
        assert set(block[name]) == {"value", "standard_deviation"}
        assert set(block[f"{name}_best_constant_classifier"]) == {"value", "standard_deviation"}
    broken = json.loads(json.dumps(doc))
    broken[contract.QUALITY_METRICS_KEY]["confusion_matrix"]["1"]["1"] += 1
    with pytest.raises(ValueError, match="add up"):
        report.validate_report(broken)
    del broken[contract.QUALITY_METRICS_KEY]["accuracy"]["standard_deviation"]
    with pytest.raises(ValueError, match="accuracy"):
        report.validate_report(broken)


def test_per_class_csv_matches_confusion_matrix(evaluated: tuple[dict, Path]) -> None:
    doc, out = evaluated
    cm = doc[contract.QUALITY_METRICS_KEY]["confusion_matrix"]
    with open(out / contract.PER_CLASS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class_name"] for r in rows] == list(CLASS_NAMES)
    for row in rows:
        i = row["class_id"]
        assert int(row["support"]) == sum(cm[i].values())
        assert int(row["correct"]) == cm[i][i]
        if int(row["support"]):
            assert float(row["recall"]) == pytest.approx(cm[i][i] / sum(cm[i].values()), abs=1e-6)


def test_pictures_are_images_of_sensible_size(evaluated: tuple[dict, Path]) -> None:
    _, out = evaluated
    for name, min_side in ((contract.CONFUSION_PNG, 800), (contract.MISCLASSIFIED_PNG, 300)):
        with Image.open(out / name) as image:
            image.load()  # decodes the whole file: a truncated PNG fails here
            assert image.format == "PNG" and min(image.size) >= min_side, (name, image.size)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [contract.EVALUATION_FILE, contract.PER_CLASS_FILE, contract.CONFUSION_PNG, contract.MISCLASSIFIED_PNG]
    )  # and no staging folder left behind


@pytest.mark.slow
def test_archive_and_batch_size_do_not_change_the_result(
    evaluated: tuple[dict, Path], model_archive: Path, test_split: Path, tmp_path: Path
) -> None:
    doc, _ = evaluated
    for batch_size in (1, TEST_RECORDS, 64):
        again = evaluate(model_archive, test_split, tmp_path / str(batch_size), batch_size=batch_size)
        assert again[contract.QUALITY_METRICS_KEY] == doc[contract.QUALITY_METRICS_KEY], batch_size


def test_worst_misclassified_are_the_most_confident_mistakes() -> None:
    labels = np.array([0, 1, 2, 2, 1])
    probs = np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.05, 0.95, 0], [0, 0, 1], [0.3, 0.1, 0.6]])
    np.testing.assert_array_equal(plots.worst_misclassified(labels, probs), [2, 1, 4])
    np.testing.assert_array_equal(plots.worst_misclassified(labels, probs, limit=1), [2])


def test_grid_images_are_the_records_predicted(test_split: Path) -> None:
    images, labels = read_split(test_split)
    files = contract.record_files(test_split, contract.TEST_SPLIT)
    picked = plots.read_images(files, np.array([36, 0, 17]), labels)
    for image, pos in zip(picked, (36, 0, 17), strict=True):
        np.testing.assert_array_equal(image, images[pos])
    wrong = labels.copy()
    wrong[17] = (wrong[17] + 1) % 43
    with pytest.raises(StepError, match="record 17 has label"):
        plots.read_images(files, np.array([17]), wrong)


@pytest.mark.slow
def test_python_dash_m_entry_point(model_archive: Path, test_split: Path, tmp_path: Path) -> None:
    """The command the Processing job runs, with the archive folder SageMaker mounts."""
    out = tmp_path / "evaluation"
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "opt-ml")}
    cmd = [sys.executable, "-m", "gtsrb.evaluate", "--model", str(model_archive), "--test", str(test_split), "--output", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"records={TEST_RECORDS} accuracy=" in result.stderr
    report.validate_report(json.loads((out / contract.EVALUATION_FILE).read_text()))
