"""The demo-data generator: layouts, determinism, tracks, mirror pairs, imbalance."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from gtsrb.common.classes import GTSRB_NUM_CLASSES, MIRROR_PAIRS
from gtsrb.demo_data.signs import draw_sign
from gtsrb.demo_data.writer import generate, tracks_per_class

SMALL = dict(tracks_per_class=2, frames_per_track=3, test_per_class=1)


def digest(root: Path) -> str:
    """Hash of every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def rows(path: Path, sep: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=sep))


def check_rows(rows_: list[dict], base: Path, name: str) -> None:
    """Every row points to an image of its stated size with the ROI inside it."""
    for row in rows_:
        image = cv2.imread(str(base / row[name]), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint8 and image.shape[2] == 3, row
        assert image.shape[:2] == (int(row["Height"]), int(row["Width"]))
        x1, y1, x2, y2 = (int(row[k]) for k in ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2"))
        assert 0 < x1 < x2 < int(row["Width"]) - 0 and 0 < y1 < y2 < int(row["Height"])


def test_same_seed_same_bytes_other_seed_differs_workers_do_not_matter(tmp_path):
    a = generate(tmp_path / "a", seed=5, workers=1, **SMALL)
    b = generate(tmp_path / "b", seed=5, workers=2, **SMALL)
    c = generate(tmp_path / "c", seed=6, workers=2, **SMALL)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_official_layout(tmp_path):
    root = generate(tmp_path, layout="official", seed=0, **SMALL)
    images = root / "GTSRB" / "Final_Training" / "Images"
    assert sorted(p.name for p in images.iterdir()) == [f"{c:05d}" for c in range(GTSRB_NUM_CLASSES)]
    for c in (0, 19, 42):
        table = rows(images / f"{c:05d}" / f"GT-{c:05d}.csv", ";")
        assert list(table[0]) == ["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"]
        assert {int(r["ClassId"]) for r in table} == {c}
        assert all(r["Filename"].endswith(".ppm") for r in table)
        check_rows(table, images / f"{c:05d}", "Filename")
    test = rows(root / "GTSRB/Final_Test/Images/GT-final_test.csv", ";")
    assert Counter(int(r["ClassId"]) for r in test) == Counter(range(GTSRB_NUM_CLASSES))
    check_rows(test, root / "GTSRB/Final_Test/Images", "Filename")
    assert (root / "GTSRB/Final_Test/Images/00000.ppm").read_bytes().startswith(b"P6")


def test_kaggle_layout(tmp_path):
    root = generate(tmp_path, layout="kaggle", seed=0, **SMALL)
    train = rows(root / "Train.csv", ",")
    assert list(train[0]) == ["Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId", "Path"]
    assert all(r["Path"] == f"Train/{r['ClassId']}/{int(r['ClassId']):05d}_{r['Path'].split('_')[1]}_{r['Path'].split('_')[2]}"
               for r in train)
    check_rows(train, root, "Path")
    test = rows(root / "Test.csv", ",")
    assert {int(r["ClassId"]) for r in test} == set(range(GTSRB_NUM_CLASSES))
    check_rows(test, root, "Path")
    meta = rows(root / "Meta.csv", ",")
    assert [int(r["ClassId"]) for r in meta] == list(range(GTSRB_NUM_CLASSES))
    assert all((root / r["Path"]).is_file() for r in meta)


def test_tracks_grow_and_stay_in_gtsrb_sizes(tmp_path):
    root = generate(tmp_path, seed=3, tracks_per_class=2, frames_per_track=8, test_per_class=1)
    images = root / "GTSRB" / "Final_Training" / "Images"
    sides = []
    for c in range(GTSRB_NUM_CLASSES):
        table = rows(images / f"{c:05d}" / f"GT-{c:05d}.csv", ";")
        by_track: dict[str, list[int]] = {}
        for r in table:
            by_track.setdefault(r["Filename"].split("_")[0], []).append(int(r["Width"]))
        for widths in by_track.values():
            assert widths == sorted(widths) and widths[-1] > widths[0]
            sides += widths
    assert 15 <= min(sides) and max(sides) <= 250
    assert 25 <= np.median(sides) <= 70


def test_mirror_pairs_are_exact_flips_and_other_classes_are_not_symmetric():
    for left, right in MIRROR_PAIRS:
        assert np.array_equal(draw_sign(left)[:, ::-1], draw_sign(right))
        assert not np.array_equal(draw_sign(left), draw_sign(right))
    drawings = [draw_sign(c)[:, :, :3].astype(int) for c in range(GTSRB_NUM_CLASSES)]
    for i in range(GTSRB_NUM_CLASSES):  # every class is distinguishable from every other
        for j in range(i + 1, GTSRB_NUM_CLASSES):
            assert np.abs(drawings[i] - drawings[j]).mean() > 1, (i, j)


def test_classes_are_imbalanced_like_gtsrb_with_at_least_two_tracks():
    counts = tracks_per_class(4)
    assert min(counts) >= 2
    assert max(counts) >= 4 * min(counts)
    assert counts[2] > counts[0]  # 50 km/h is common, 20 km/h rare, as in GTSRB


def test_cli_writes_the_requested_layout(tmp_path):
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "gtsrb.demo_data", "--output", str(tmp_path), "--layout", "kaggle",
         "--tracks-per-class", "2", "--frames-per-track", "2", "--test-per-class", "1"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "Train.csv").is_file() and "images=" in run.stderr


@pytest.mark.parametrize("flag", ["--tracks-per-class", "--frames-per-track"])
def test_cli_refuses_zero_sizes(tmp_path, flag):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "gtsrb.demo_data", "--output", str(tmp_path), flag, "0"], capture_output=True, text=True)
    assert run.returncode == 2 and "at least 1" in run.stderr


def test_generated_classes_are_imbalanced_and_rois_frame_the_sign(tmp_path):
    root = generate(tmp_path, seed=1, tracks_per_class=3, frames_per_track=2, test_per_class=1)
    images = root / "GTSRB" / "Final_Training" / "Images"
    table = [r for c in range(GTSRB_NUM_CLASSES) for r in rows(images / f"{c:05d}" / f"GT-{c:05d}.csv", ";")]
    per_class = Counter(int(r["ClassId"]) for r in table)
    assert max(per_class.values()) >= 2 * min(per_class.values())
    for r in table:  # a ~10% margin each side, like GTSRB: the box covers 55-95% of the side
        side = int(r["Width"])
        share = (int(r["Roi.X2"]) - int(r["Roi.X1"]) + 1) / side
        assert 0.55 <= share <= 0.95, r


def test_kaggle_meta_names_shape_and_colour(tmp_path):
    root = generate(tmp_path, layout="kaggle", seed=0, tracks_per_class=1, frames_per_track=1, test_per_class=1)
    meta = {int(r["ClassId"]): r for r in rows(root / "Meta.csv", ",")}
    assert (meta[14]["ShapeId"], meta[14]["ColorId"]) == ("4", "0")  # red octagon
    assert (meta[12]["ShapeId"], meta[12]["ColorId"]) == ("2", "2")  # yellow diamond
    assert (meta[35]["ShapeId"], meta[35]["ColorId"]) == ("1", "1")  # blue circle
    assert (meta[13]["ShapeId"], meta[25]["ShapeId"]) == ("3", "0")  # yield vs warning triangle
    drawing = cv2.imread(str(root / meta[14]["Path"]), cv2.IMREAD_UNCHANGED)
    assert drawing.shape[2] == 4 and drawing[0, 0, 3] == 0  # transparent outside the sign
