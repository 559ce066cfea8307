"""Contrast equalisation (`equalize`): one function (gtsrb.common.image_input.equalize) applied by every
reader of a model's input: record_iter's equalised copy of a packed split (train, validation, evaluate)
and serving's to_input. Its place in preprocessing.json, and its effect on a dark sign."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from gtsrb.common import contract
from gtsrb.common.image_input import equalize
from gtsrb.common.model_io import load_model
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.common.recordio_format import image_of, split_records
from gtsrb.common.records import equalized, predict
from gtsrb.serve.predictor import Predictor


def luminance(image_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB)[:, :, 0].astype(np.float32)


def dark_sign() -> np.ndarray:
    """A 36 px red ring with a white centre and a dark pictogram, photographed at 1/8 of its brightness."""
    image = np.full((36, 36, 3), 60, np.uint8)
    cv2.circle(image, (18, 18), 15, (40, 40, 220), -1)
    cv2.circle(image, (18, 18), 11, (245, 245, 245), -1)
    cv2.putText(image, "5", (12, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    return (image // 8).astype(np.uint8)


def test_clahe_lifts_a_dark_sign_and_none_leaves_it() -> None:
    dark = dark_sign()
    assert equalize(dark, "none") is dark
    lifted = equalize(dark, "clahe")
    assert lifted.shape == dark.shape and lifted.dtype == np.uint8
    # brighter and more contrast (clip limit 2 bounds the lift: ~1.35x the spread here, not a full stretch)
    assert luminance(lifted).mean() > 1.5 * luminance(dark).mean()
    assert luminance(lifted).std() > 1.25 * luminance(dark).std()
    with pytest.raises(ValueError, match="equalize='histogram' is unknown"):
        equalize(dark, "histogram")


@pytest.mark.parametrize(("field", "value", "unknown"), [("tta", "shift", "mirror"), ("equalize", "clahe", "global")])
def test_preprocessing_json_carries_the_scorers_options(tmp_path: Path, field: str, value: str, unknown: str) -> None:
    """tta and equalize are part of a model's input contract: saved, read back, "none" for models saved before them."""
    Preprocessing(image_size=32, **{field: value}).save(tmp_path / "p.json")
    assert getattr(Preprocessing.load(tmp_path / "p.json"), field) == value
    raw = json.loads((tmp_path / "p.json").read_text())
    del raw[field]  # a model saved before the option existed
    (tmp_path / "p.json").write_text(json.dumps(raw))
    assert getattr(Preprocessing.load(tmp_path / "p.json"), field) == "none"
    assert Preprocessing.for_hyperparameters({"image_size": 40, field: value}) == Preprocessing(40, **{field: value})
    with pytest.raises(ValueError, match=f"{field}='{unknown}' is unknown"):
        Preprocessing(image_size=32, **{field: unknown})


def test_an_equalised_split_keeps_keys_and_labels_and_equalises_every_image(test_split: Path) -> None:
    files = contract.record_files(test_split, "test")
    assert equalized(files, "none") is files
    copy = equalized(files, "clahe")
    assert copy.rec.parent != files.rec.parent and equalized(files, "clahe") == copy  # made once per process
    original = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    equal = mx.recordio.MXIndexedRecordIO(str(copy.idx), str(copy.rec), "r")
    assert equal.keys == original.keys and len(original.keys) > 0
    changed = 0
    for key in original.keys:
        header, image = mx.recordio.unpack_img(original.read_idx(key), cv2.IMREAD_COLOR)
        copy_header, copy_image = mx.recordio.unpack_img(equal.read_idx(key), cv2.IMREAD_COLOR)
        assert copy_header.label == header.label
        np.testing.assert_array_equal(copy_image, equalize(image, "clahe"))  # PNG: exactly what equalize returned
        changed += not np.array_equal(copy_image, image)
    assert changed == len(original.keys)


def test_evaluate_and_serving_both_apply_the_models_equalisation(model_dir: Path, test_split: Path, tmp_path: Path) -> None:
    """The same network with equalize=clahe: evaluate (ImageRecordIter on the equalised copy) and serving
    (to_input on each image file) score the same, and not what the network scores without it."""
    clahe_model = tmp_path / "model"
    shutil.copytree(model_dir, clahe_model)
    prep = Preprocessing.load(model_dir / contract.PREPROCESSING_FILE)
    Preprocessing(prep.image_size, prep.mean_rgb, prep.std_rgb, equalize="clahe").save(clahe_model / contract.PREPROCESSING_FILE)
    files = contract.record_files(test_split, "test")
    model = load_model(clahe_model, mx.cpu())
    _, evaluated = predict(model.net, files, model.preprocessing, 7, mx.cpu())
    _, plain = predict(model.net, files, prep, 7, mx.cpu())
    predictor = Predictor.load(clahe_model)
    images = [image_of(record) for record in split_records(files.rec.read_bytes())]
    served = predictor.probabilities([predictor.image_input(image) for image in images])
    np.testing.assert_allclose(served, evaluated, atol=1e-4)
    assert np.abs(evaluated - plain).max() > 1e-2  # equalisation changed what the network saw
