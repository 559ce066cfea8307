"""The evaluate step on the prepare step's real output: the generated demo set and the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from gtsrb.common import contract
from gtsrb.common.model_io import load_model
from gtsrb.common.records import record_count
from gtsrb.evaluate import plots, predictions, report
from gtsrb.evaluate.step import evaluate
from testkit.evaluate import save_tiny_model, train_tiny_net

PREPARED_SIZE = 32  # the input size prepared_demo packs for


@pytest.fixture(scope="module")
def model_32px(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 43-class model with a 32 px input (it has not seen the demo signs: it errs a lot)."""
    net = train_tiny_net(43, steps=5, image_size=PREPARED_SIZE)
    return save_tiny_model(tmp_path_factory.mktemp("model-32") / "model", net, image_size=PREPARED_SIZE)


def test_evaluates_every_prepared_test_record(prepared: Path, model_32px: Path, tmp_path: Path) -> None:
    test_dir = prepared / "test"
    files = contract.record_files(test_dir, "test")
    doc = evaluate(model_32px, test_dir, tmp_path / "out", batch_size=64)
    report.validate_report(doc)
    expected = record_count(files)
    assert doc[contract.EVALUATION_DETAILS_KEY]["records"] == expected and expected % 64 != 0

    # The reported accuracy equals the one from predictions made through the iterator directly.
    model = load_model(model_32px, mx.cpu())
    labels, probs = [], []
    for batch in mx.io.ImageRecordIter(path_imgrec=str(files.rec), data_shape=model.preprocessing.data_shape,
                                       batch_size=1, **model.preprocessing.normalize_kwargs()):
        probs.append(model.net(batch.data[0].as_in_context(mx.cpu())).asnumpy())
        labels.append(int(batch.label[0].asscalar()))
    accuracy = float(np.mean(np.concatenate(probs).argmax(axis=1) == np.array(labels)))
    assert len(labels) == expected
    assert contract.json_get(doc, contract.ACCURACY_JSON_PATH) == pytest.approx(accuracy, abs=1e-12)

    # The grid shows the most confident mistakes, their records read back with matching labels.
    with Image.open(tmp_path / "out" / contract.MISCLASSIFIED_PNG) as image:
        image.load()
        assert image.size[1] >= 5 * 250  # five rows of five: the untrained model errs often
    saved = json.loads((tmp_path / "out" / contract.EVALUATION_FILE).read_text())
    assert saved == json.loads(json.dumps(doc))

    # predictions.csv: one row per record in file order, the iterator's labels and predictions,
    # each row's file the prepare step's test.lst entry (a real image file of the data set).
    table = predictions.read_predictions(tmp_path / "out" / contract.PREDICTIONS_FILE)
    stacked = np.concatenate(probs)
    softmax = np.exp(stacked - stacked.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert [r.record for r in table] == list(range(expected))
    assert [r.true_class for r in table] == labels
    assert [r.predicted_class for r in table] == list(softmax.argmax(axis=1))
    assert sum(not r.wrong for r in table) == doc[contract.EVALUATION_DETAILS_KEY]["correct"]
    listed = [line.split("\t")[2].strip() for line in files.lst.read_text().splitlines()]
    assert [r.file for r in table] == listed and all(f.endswith((".ppm", ".png", ".jpg")) for f in listed)
    for row in table[:50]:
        assert row.probability == pytest.approx(softmax[row.record].max(), abs=1e-4)  # batch 1 vs 64: float noise
        assert row.true_class_probability == pytest.approx(softmax[row.record, row.true_class], abs=1e-4)
        assert row.probability >= row.top2_probability >= row.top3_probability
        assert len({row.predicted_class, row.top2_class, row.top3_class}) == 3
    worst = predictions.worst_misclassified(table, plots.GRID_SIZE)
    assert len(worst) == plots.GRID_SIZE and all(r.wrong for r in worst)
    assert [r.probability for r in worst] == sorted((r.probability for r in worst), reverse=True)
    assert len(plots.read_images(files, worst)) == plots.GRID_SIZE
