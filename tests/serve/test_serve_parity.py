"""Parity: the server answers what the evaluate step predicts, image for image, class id for class id.

The images are the prepare step's packed test records (the real GTSRB sample's test images, and
a generated set), sent to a running server as the image files they hold, one by one and as one
RecordIO batch, and compared with evaluate's predictions on the same split.
"""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_CLASS_NAMES
from gtsrb.common.model_io import load_model
from gtsrb.common.recordio_format import image_of, split_records
from gtsrb.evaluate.step import predict_all
from gtsrb.serve import protocol
from gtsrb.serve.predictor import Predictor
from testkit.evaluate import save_tiny_model, train_tiny_net
from testkit.serve import running_server

pytestmark = pytest.mark.slow
IMAGE_SIZE = 32  # the shared prepared fixtures pack for 32 px networks


@pytest.fixture(scope="module")
def model_32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 32 px model (the same trainer as tests/evaluate)."""
    net = train_tiny_net(len(GTSRB_CLASS_NAMES), image_size=IMAGE_SIZE)
    return save_tiny_model(tmp_path_factory.mktemp("model-32") / "model", net, image_size=IMAGE_SIZE)


def evaluate_predictions(model_dir: Path, test_dir: Path) -> np.ndarray:
    """Evaluate's probabilities on the split (its own code path: ImageRecordIter)."""
    model = load_model(model_dir, mx.cpu())
    _, probs = predict_all(model, contract.record_files(test_dir, "test"), 16, mx.cpu())
    return probs


def test_server_matches_evaluate(prepared: Path, model_32: Path, tmp_path: Path) -> None:
    test_dir = prepared / "test"
    expected = evaluate_predictions(model_32, test_dir)
    rec_bytes = contract.record_files(test_dir, "test").rec.read_bytes()
    images = [image_of(record) for record in split_records(rec_bytes)]
    assert len(images) == len(expected) > 0
    with running_server(model_32, tmp_path / "server.log") as server:
        single = [server.post(image, "image/jpeg").json() for image in images]
        batch = server.post(rec_bytes, protocol.RECORDIO_CONTENT_TYPE, **{protocol.CUSTOM_ATTRIBUTES_HEADER: "top_k=1"})
    served = [answer["predictions"][0] for answer in single]
    assert [p["class_id"] for p in served] == expected.argmax(axis=1).tolist()
    assert np.allclose([p["probability"] for p in served], expected.max(axis=1), atol=1e-4)
    batch_ids = [json.loads(line)["predictions"][0]["class_id"] for line in batch.text.splitlines()]
    assert batch_ids == expected.argmax(axis=1).tolist()


def test_in_process_predictor_matches_evaluate(prepared_demo: Path, model_32: Path) -> None:
    """The same check without HTTP: `make predict` and the server share Predictor."""
    expected = evaluate_predictions(model_32, prepared_demo / "test")
    images = [image_of(r) for r in split_records(contract.record_files(prepared_demo / "test", "test").rec.read_bytes())]
    predictor = Predictor.load(model_32)
    probs = predictor.probabilities([predictor.image_input(image) for image in images])
    assert np.array_equal(probs.argmax(axis=1), expected.argmax(axis=1))
    assert np.abs(probs - expected).max() < 1e-4
