"""Test-time augmentation: the shared scorer (gtsrb.common.inference), its place in preprocessing.json,
and evaluate applying the model's own setting and naming it in evaluation.json."""

from __future__ import annotations

import shutil
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from test_evaluate_step import read_split

from gtsrb.common import contract
from gtsrb.common.inference import class_probabilities, rotated, shifted
from gtsrb.common.model_io import load_model
from gtsrb.common.preprocessing import TTA_VIEWS, Preprocessing
from gtsrb.common.records import predict
from gtsrb.evaluate.step import evaluate
from testkit.evaluate import IMAGE_SIZE, to_batch


def numpy_shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Independent reference: move NCHW by (dy, dx), repeating the border."""
    h, w = x.shape[2:]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[:, :, rows][:, :, :, cols]


def numpy_rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """Independent reference: each output pixel reads the input bilinearly at its position turned
    about the centre (coordinates -1..1 over the pixel centres), 0 outside the image."""
    h, w = x.shape[2:]
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    out = np.zeros_like(x)
    for i in range(h):
        for j in range(w):
            xt, yt = -1 + 2 * j / (w - 1), -1 + 2 * i / (h - 1)
            px, py = (c * xt - s * yt + 1) * (w - 1) / 2, (s * xt + c * yt + 1) * (h - 1) / 2
            x0, y0 = int(np.floor(px)), int(np.floor(py))
            for yy, xx, weight in ((y0, x0, (1 - (px - x0)) * (1 - (py - y0))), (y0, x0 + 1, (px - x0) * (1 - (py - y0))),
                                   (y0 + 1, x0, (1 - (px - x0)) * (py - y0)), (y0 + 1, x0 + 1, (px - x0) * (py - y0))):
                if 0 <= yy < h and 0 <= xx < w:
                    out[:, :, i, j] += weight * x[:, :, yy, xx]
    return out


def numpy_view(x: np.ndarray, dy: int, dx: int, degrees: float) -> np.ndarray:
    return numpy_rotate(numpy_shift(x, dy, dx), degrees) if degrees else numpy_shift(x, dy, dx)


@pytest.mark.parametrize("degrees", [10.0, -10.0, 37.0])
def test_rotate_turns_the_image_about_its_centre(degrees: float) -> None:
    x = np.random.default_rng(2).normal(size=(2, 3, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(rotated(mx.nd.array(x), degrees).asnumpy(), numpy_rotate(x, degrees), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rotated(mx.nd.array(x), 90).asnumpy(), np.rot90(x, 1, axes=(2, 3)), atol=1e-5)
    assert rotated(mx.nd.array(x), 0.0).asnumpy().tolist() == x.tolist()


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (1, -2)])
def test_shift_moves_the_image_and_repeats_the_border(dy: int, dx: int) -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 9)).astype(np.float32)
    np.testing.assert_array_equal(shifted(mx.nd.array(x), dy, dx).asnumpy(), numpy_shift(x, dy, dx))


def test_probabilities_average_the_views(trained_net: mx.gluon.HybridBlock) -> None:
    x = np.random.default_rng(1).normal(size=(4, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    def softmax(v: np.ndarray) -> np.ndarray:
        logits = trained_net(mx.nd.array(v)).asnumpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    for tta in ("shift", "rotate"):
        expected = np.mean([softmax(numpy_view(x, *view)) for view in TTA_VIEWS[tta]], axis=0)
        np.testing.assert_allclose(class_probabilities(trained_net, mx.nd.array(x), tta), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(class_probabilities(trained_net, mx.nd.array(x), "none"), softmax(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tta='flip' is unknown"):
        class_probabilities(trained_net, mx.nd.array(x), "flip")


def test_evaluate_applies_the_models_tta_and_names_it(model_dir: Path, test_split: Path, tmp_path: Path) -> None:
    shift_model = tmp_path / "model"
    shutil.copytree(model_dir, shift_model)
    prep = Preprocessing.load(model_dir / contract.PREPROCESSING_FILE)
    Preprocessing(prep.image_size, prep.mean_rgb, prep.std_rgb, tta="shift").save(shift_model / contract.PREPROCESSING_FILE)
    plain = evaluate(model_dir, test_split, tmp_path / "plain")
    with_tta = evaluate(shift_model, test_split, tmp_path / "tta")
    assert plain[contract.EVALUATION_DETAILS_KEY]["tta"] == "none"
    assert with_tta[contract.EVALUATION_DETAILS_KEY]["tta"] == "shift"

    # Independently: centre crop and normalise image by image, average the shifted views in numpy.
    model = load_model(shift_model, mx.cpu())
    images, labels = read_split(test_split)
    x = to_batch(images, prep).asnumpy()
    def softmax(v: np.ndarray) -> np.ndarray:
        logits = model.net(mx.nd.array(v)).asnumpy()
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    probs = np.mean([softmax(numpy_view(x, *view)) for view in TTA_VIEWS["shift"]], axis=0)
    _, scored = predict(model.net, contract.record_files(test_split, "test"), model.preprocessing, 7, mx.cpu())
    np.testing.assert_allclose(scored, probs, rtol=1e-4, atol=1e-5)  # what evaluate and validation score with
    assert not np.allclose(probs, np.mean([softmax(x)], axis=0), atol=1e-5)  # the views do change the scores
    accuracy = float((probs.argmax(axis=1) == labels).mean())
    assert with_tta[contract.QUALITY_METRICS_KEY]["accuracy"]["value"] == pytest.approx(accuracy, abs=1.5 / len(labels))
