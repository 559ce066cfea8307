"""The evaluate step on a model trained here: exact counts, correct metrics, a valid report, pictures."""

from __future__ import annotations

import csv
import dataclasses
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
from gtsrb.common.classes import GTSRB_CLASS_NAMES
from gtsrb.common.failure import StepError
from gtsrb.common.model_io import load_model
from gtsrb.common.records import eval_iter
from gtsrb.evaluate import plots, predictions, report
from gtsrb.evaluate.cli import main
from gtsrb.evaluate.step import evaluate
from testkit.evaluate import BATCH_SIZE, CLASSES, TEST_RECORDS, to_batch

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
    assert len(cm) == len(GTSRB_CLASS_NAMES) and all(len(row) == len(GTSRB_CLASS_NAMES) for row in cm.values())


def test_the_report_names_the_classes_it_could_not_score(evaluated: tuple[dict, Path]) -> None:
    """The tiny test set holds 6 of the model's 43 classes (allow_missing_test_classes): the other 37 are named."""
    details = evaluated[0][contract.EVALUATION_DETAILS_KEY]
    unscored = details["unscored_classes"]
    assert [c["class_id"] for c in unscored] == [i for i in range(len(GTSRB_CLASS_NAMES)) if i not in CLASSES]
    assert unscored[0] == {"class_id": 0, "class_name": GTSRB_CLASS_NAMES[0]}
    assert details["classes_in_test_set"] == len(CLASSES) == len(GTSRB_CLASS_NAMES) - len(unscored)


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
    expected_cm = skm.confusion_matrix(labels, predicted, labels=range(len(GTSRB_CLASS_NAMES)))
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
    assert [r["class_name"] for r in rows] == list(GTSRB_CLASS_NAMES)
    for row in rows:
        i = row["class_id"]
        assert int(row["support"]) == sum(cm[i].values())
        assert int(row["correct"]) == cm[i][i]
        if int(row["support"]):
            assert float(row["recall"]) == pytest.approx(cm[i][i] / sum(cm[i].values()), abs=1e-6)


def test_pictures_are_images_of_sensible_size(evaluated: tuple[dict, Path]) -> None:
    _, out = evaluated
    for name, min_side in ((contract.CONFUSION_PNG, 800), (contract.CONFUSION_NORMALISED_PNG, 800),
                           (contract.MISCLASSIFIED_PNG, 300)):
        with Image.open(out / name) as image:
            image.load()  # decodes the whole file: a truncated PNG fails here
            assert image.format == "PNG" and min(image.size) >= min_side, (name, image.size)
    assert sorted(p.name for p in out.iterdir()) == sorted(contract.EVALUATION_OUTPUTS)  # and no staging folder left behind


@pytest.mark.slow
def test_archive_and_batch_size_do_not_change_the_result(
    evaluated: tuple[dict, Path], model_archive: Path, test_split: Path, tmp_path: Path
) -> None:
    doc, _ = evaluated
    for batch_size in (1, TEST_RECORDS, 64):
        again = evaluate(model_archive, test_split, tmp_path / str(batch_size), batch_size=batch_size)
        assert again[contract.QUALITY_METRICS_KEY] == doc[contract.QUALITY_METRICS_KEY], batch_size


def test_worst_misclassified_are_the_most_confident_mistakes(tmp_path: Path) -> None:
    labels = np.array([0, 1, 2, 2, 1])
    probs = np.array([[0.9, 0.1, 0], [0.6, 0.4, 0], [0.05, 0.95, 0], [0, 0, 1], [0.3, 0.1, 0.6]])
    table = predictions.rows(labels, probs, [f"Images/{i:05d}.ppm" for i in range(5)])
    path = predictions.write_predictions(table, tmp_path / contract.PREDICTIONS_FILE)
    again = predictions.read_predictions(path)
    assert [r.record for r in predictions.worst_misclassified(again, limit=25)] == [2, 1, 4]
    assert [r.record for r in predictions.worst_misclassified(again, limit=1)] == [2]
    assert again[2] == predictions.Prediction(2, "Images/00002.ppm", 2, 1, 0.95, 0.0, 0, 0.05, 2, 0.0)
    assert again[4].true_class_probability == 0.1 and (again[4].top2_class, again[4].top3_class) == (0, 1)
    path.write_text("file,true\nx,1\n")
    with pytest.raises(StepError, match="not a predictions table"):
        predictions.read_predictions(path)


def test_dark_images_are_shown_stretched_bright_ones_as_they_are() -> None:
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 40, (36, 36, 3), dtype=np.uint8)
    shown, stretched = plots.stretched(dark)
    assert stretched and np.percentile(shown, 99) > 200 and shown.dtype == np.uint8
    bright = rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)
    assert plots.stretched(bright)[1] is False and plots.stretched(bright)[0] is bright
    flat = np.full((36, 36, 3), 5, np.uint8)
    assert plots.stretched(flat)[1] is False  # nothing to stretch: shown as it is


def test_row_normalised_confusion_matrix_is_a_picture(tmp_path: Path) -> None:
    cm = np.array([[98, 2, 0], [0, 5, 5], [0, 0, 0]])
    path = plots.plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png", row_normalised=True)
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"


def test_grid_images_are_the_records_predicted(test_split: Path) -> None:
    images, labels = read_split(test_split)
    files = contract.record_files(test_split, contract.TEST_SPLIT)
    probs = np.eye(43)[(labels + 1) % 43]  # every prediction wrong
    table = predictions.rows(labels, probs, [""] * len(labels))
    picked = plots.read_images(files, [table[36], table[0], table[17]])
    for image, pos in zip(picked, (36, 0, 17), strict=True):
        np.testing.assert_array_equal(image, images[pos])
    wrong = dataclasses.replace(table[17], true_class=(table[17].true_class + 1) % 43)
    with pytest.raises(StepError, match="record 17 has label"):
        plots.read_images(files, [wrong])
    with pytest.raises(StepError, match="the predictions name record 999"):
        plots.read_images(files, [dataclasses.replace(table[0], record=999)])


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
