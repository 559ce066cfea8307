"""The prepare step on tiny written datasets (both layouts), generated demo data and the real sample."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.contract import MANIFEST_FILE, SPLITS, record_files
from gtsrb.prepare.images import crop_box, scaled_roi
from gtsrb.prepare.layouts import Sample
from gtsrb.prepare.step import PrepareOptions, prepare
from testkit.prepare import class_colour, write_kaggle, write_official

OPTIONS = PrepareOptions(image_size=16, workers=2)


def read_records(folder: Path, split: str) -> tuple[list[int], list[np.ndarray]]:
    """Labels and decoded images of a packed split, via MXNet's own reader."""
    files = record_files(folder / split, split)
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    labels, images = [], []
    for key in reader.keys:
        header, image = mx.recordio.unpack_img(reader.read_idx(key))
        labels.append(int(header.label))
        images.append(image)
    reader.close()
    return labels, images


def lst_rows(folder: Path, split: str) -> list[tuple[int, int, str]]:
    lines = record_files(folder / split, split).lst.read_text().splitlines()
    return [(int(i), int(label), path) for i, label, path in (line.split("\t") for line in lines)]


def tracks_of(rows: list[tuple[int, int, str]]) -> set[str]:
    """`<class>/<track>` of each .lst path (TTTTT_FFFFF or CCCCC_TTTTT_FFFFF names)."""
    return {f"{label}/{Path(path).stem.split('_')[-2]}" for _, label, path in rows}


@pytest.mark.parametrize("writer", [write_official, write_kaggle], ids=["official", "kaggle"])
def test_both_layouts_pack_every_image_once_with_its_label(tmp_path, writer):
    data = writer(tmp_path / "data", tracks=3, frames=2, test_per_class=2)
    manifest = prepare(data, tmp_path / "out", OPTIONS)

    counts = {s: manifest["counts"][s]["total"] for s in SPLITS}
    assert counts["train"] + counts["validation"] == GTSRB_NUM_CLASSES * 3 * 2
    assert counts["test"] == GTSRB_NUM_CLASSES * 2
    for split in SPLITS:
        labels, images = read_records(tmp_path / "out", split)
        rows = lst_rows(tmp_path / "out", split)
        assert len(labels) == len(rows) == counts[split]
        assert labels == [label for _, label, _ in rows]
        assert Counter(labels) == Counter(dict(enumerate(manifest["counts"][split]["per_class"]))) - Counter()
        assert all(img.shape == (18, 18, 3) for img in images)  # stored_size(16)
        # the sign's colour survives packing: record i is the sign of its own label
        for label, img in zip(labels, images, strict=True):
            assert np.abs(img[9, 9].astype(int) - class_colour(label)).max() < 24
    assert manifest["layout"] == ("official" if writer is write_official else "kaggle")
    assert (tmp_path / "out" / "manifest" / MANIFEST_FILE).is_file()


def test_split_is_by_whole_track_stratified_and_seeded(tmp_path):
    data = write_official(tmp_path / "data", tracks=5, frames=2, test_per_class=1)
    prepare(data, tmp_path / "a", PrepareOptions(image_size=16, validation_fraction=0.2, seed=3))
    train, validation = tracks_of(lst_rows(tmp_path / "a", "train")), tracks_of(lst_rows(tmp_path / "a", "validation"))
    assert not train & validation, "a track is on both sides of the split"
    per_class = Counter(t.split("/")[0] for t in validation)
    assert per_class == Counter({str(c): 1 for c in range(GTSRB_NUM_CLASSES)})  # round(0.2 * 5) = 1 track each

    prepare(data, tmp_path / "b", PrepareOptions(image_size=16, validation_fraction=0.2, seed=3))
    prepare(data, tmp_path / "c", PrepareOptions(image_size=16, validation_fraction=0.2, seed=4))
    assert tracks_of(lst_rows(tmp_path / "b", "validation")) == validation
    assert tracks_of(lst_rows(tmp_path / "c", "validation")) != validation


def test_roi_crop_geometry():
    assert crop_box((10, 20, 29, 39), 100, 100, 0.0) == (10, 20, 30, 40)
    assert crop_box((10, 20, 29, 39), 100, 100, 0.1) == (8, 18, 32, 42)
    assert crop_box((0, 0, 49, 49), 50, 50, 0.2) == (0, 0, 50, 50)  # clipped to the image
    # a resized copy of an image keeps its CSV's Width/Height: the ROI is scaled to real pixels
    sample = Sample(Path("x.ppm"), 0, "00/0", width=58, height=58, roi=(5, 6, 53, 53))
    assert scaled_roi(sample, 35, 35) == (3, 4, 32, 32)
    assert scaled_roi(sample, 58, 58) == (5, 6, 53, 53)


def test_roi_crop_removes_the_border_and_whole_images_keep_it(tmp_path):
    data = write_official(tmp_path / "data", tracks=2, frames=1, test_per_class=1)
    prepare(data, tmp_path / "crop", PrepareOptions(image_size=32, roi_margin=0.0))
    prepare(data, tmp_path / "whole", PrepareOptions(image_size=32, roi_crop=False))
    cropped = read_records(tmp_path / "crop", "test")[1][0]
    whole = read_records(tmp_path / "whole", "test")[1][0]
    grey = np.array([128, 128, 128])
    assert np.abs(cropped[1, 1].astype(int) - grey).max() > 40, "the corner should be the sign, not the border"
    assert np.abs(whole[1, 1].astype(int) - grey).max() < 12, "without ROI crop the grey border stays"


def test_manifest_reports_sizes_upscaling_parameters_and_a_content_hash(tmp_path):
    data = write_official(tmp_path / "data", tracks=2, frames=2, test_per_class=1)
    first = prepare(data, tmp_path / "a", OPTIONS)
    assert first["parameters"]["image_size"] == 16 and first["parameters"]["stored_size"] == 18
    assert first["image_size"]["width"] == {"min": 20, "median": 24.0, "max": 24}
    assert first["image_size"]["upscaled"] == 0  # 20-24 px images cropped to >= 18 px
    assert prepare(data, tmp_path / "b", OPTIONS)["input_sha256"] == first["input_sha256"]
    cv2.imwrite(str(next((data / "GTSRB" / "Final_Test" / "Images").glob("*.ppm"))), np.zeros((24, 24, 3), np.uint8))
    assert prepare(data, tmp_path / "c", OPTIONS)["input_sha256"] != first["input_sha256"]


def test_real_sample_all_steps_of_prepare(sample_dir, tmp_path):
    manifest = prepare(sample_dir, tmp_path, PrepareOptions(image_size=32))
    counts = {s: manifest["counts"][s]["total"] for s in SPLITS}
    assert counts["train"] + counts["validation"] == 1690 and counts["test"] == 860
    assert manifest["skipped"] == []
    assert not tracks_of(lst_rows(tmp_path, "train")) & tracks_of(lst_rows(tmp_path, "validation"))
    labels, images = read_records(tmp_path, "test")
    gt = (sample_dir / "GTSRB/Final_Test/Images/GT-final_test.csv").read_text().splitlines()[1:]
    assert labels == [int(line.split(";")[-1]) for line in gt]
    assert images[0].shape == (36, 36, 3)


def test_generated_demo_data_both_layouts(demo_official, demo_kaggle, tmp_path):
    for name, data in (("official", demo_official), ("kaggle", demo_kaggle)):
        manifest = prepare(data, tmp_path / name, PrepareOptions(image_size=32))
        assert manifest["layout"] == name
        assert all(n > 0 for n in manifest["counts"]["train"]["per_class"])
        assert all(n > 0 for n in manifest["counts"]["test"]["per_class"])
        assert manifest["skipped"] == []


def test_records_feed_image_record_iter_with_right_labels(prepared_demo):
    files = record_files(prepared_demo / "test", "test")
    it = mx.io.ImageRecordIter(path_imgrec=str(files.rec), path_imgidx=str(files.idx), data_shape=(3, 32, 32), batch_size=7)
    expected = [label for _, label, _ in lst_rows(prepared_demo, "test")]
    seen = []
    for batch in it:
        seen += batch.label[0].asnumpy().astype(int).tolist()
    assert seen[: len(expected)] == expected
    assert json.loads((prepared_demo / "manifest" / MANIFEST_FILE).read_text())["counts"]["test"]["total"] == len(expected)
