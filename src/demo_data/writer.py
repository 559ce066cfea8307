"""Write a synthetic GTSRB-like dataset in the official or the Kaggle layout.

Deterministic for a seed: every track and test image has its own seed, so the output does
not depend on the number of worker processes. Class sizes follow real GTSRB's imbalance.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.progress import progress
from gtsrb.demo_data.scene import photograph, physical_sign, track_sides
from gtsrb.demo_data.signs import draw_sign, shape_and_colour

OFFICIAL, KAGGLE = "official", "kaggle"
# Training images per class in real GTSRB: the demo keeps its imbalance (max/min ~ 10x).
GTSRB_TRAIN_COUNTS = (
    210, 2220, 2250, 1410, 1980, 1860, 420, 1440, 1410, 1470, 2010, 1320, 2100, 2160, 780, 630, 420, 1110,
    1200, 210, 360, 330, 390, 510, 270, 1500, 600, 240, 540, 270, 450, 780, 240, 689, 420, 1200, 390, 210,
    2070, 300, 360, 240, 240,
)
# The default demo set (make demo, make demo-data): many physical signs with few frames each,
# 5,155 images. A net trained on few tracks per class learns each track's look instead of the
# sign: with the CPU recipe, 6 tracks x 15 frames reached 0.59 test accuracy, 20 x 5 0.81-0.85.
DEFAULT_TRACKS_PER_CLASS = 20
DEFAULT_FRAMES_PER_TRACK = 5
DEFAULT_TEST_PER_CLASS = 20
COLUMNS = ("Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")


@dataclass(frozen=True)
class Job:
    """One track (frames > 1) or one test image, and where its files go."""

    class_id: int
    seed: tuple[int, ...]
    files: tuple[Path, ...]
    names: tuple[str, ...]  # as listed in the CSV


def tracks_per_class(mean_tracks: int) -> list[int]:
    """Tracks of each class: GTSRB's proportions scaled to `mean_tracks` on average, at least 2."""
    counts = np.array(GTSRB_TRAIN_COUNTS, float)
    return [max(2, int(round(mean_tracks * c / counts.mean()))) for c in counts]


def render(job: Job) -> list[list]:
    """Write the frames of one job; return their CSV rows (name first)."""
    cv2.setNumThreads(1)
    rng = np.random.default_rng(job.seed)
    sign = physical_sign(job.class_id, rng)
    sides = track_sides(len(job.files), rng) if len(job.files) > 1 else [track_sides(2, rng)[rng.integers(0, 2)]]
    rows = []
    for path, name, side in zip(job.files, job.names, sides, strict=True):
        image, roi = photograph(sign, side, rng)
        cv2.imwrite(str(path), image)
        rows.append([name, side, side, *roi, job.class_id])
    return rows


def plan(root: Path, layout: str, seed: int, mean_tracks: int, frames: int, test_per_class: int) -> tuple[list[Job], list[Job]]:
    """The training jobs (one per track) and test jobs (one per image) with their file names."""
    train, test = [], []
    for c, n_tracks in enumerate(tracks_per_class(mean_tracks)):
        for t in range(n_tracks):
            if layout == OFFICIAL:
                names = tuple(f"{t:05d}_{f:05d}.ppm" for f in range(frames))
                files = tuple(root / "GTSRB/Final_Training/Images" / f"{c:05d}" / n for n in names)
            else:
                names = tuple(f"Train/{c}/{c:05d}_{t:05d}_{f:05d}.png" for f in range(frames))
                files = tuple(root / n for n in names)
            train.append(Job(c, (seed, 0, c, t), files, names))
    order = np.random.default_rng((seed, 1)).permutation(GTSRB_NUM_CLASSES * test_per_class)
    for i, k in enumerate(order):
        name = f"{i:05d}.ppm" if layout == OFFICIAL else f"Test/{i:05d}.png"
        folder = root / "GTSRB/Final_Test/Images" if layout == OFFICIAL else root
        test.append(Job(int(k % GTSRB_NUM_CLASSES), (seed, 2, int(k)), (folder / name,), (name,)))
    return train, test


def generate(
    output_dir: str | Path,
    layout: str = OFFICIAL,
    seed: int = 0,
    tracks_per_class: int = DEFAULT_TRACKS_PER_CLASS,
    frames_per_track: int = DEFAULT_FRAMES_PER_TRACK,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
    workers: int | None = None,
) -> Path:
    """Write the dataset under `output_dir` and return that folder (pass it to prepare)."""
    if layout not in (OFFICIAL, KAGGLE):
        raise ValueError(f"layout must be {OFFICIAL} or {KAGGLE}, not {layout!r}")
    root = Path(output_dir)
    train, test = plan(root, layout, seed, tracks_per_class, frames_per_track, test_per_class)
    for job in train + test:
        job.files[0].parent.mkdir(parents=True, exist_ok=True)
    with multiprocessing.get_context("fork").Pool(workers or len(os.sched_getaffinity(0))) as pool:
        train_rows = list(progress(pool.imap(render, train), total=len(train), desc="demo tracks", unit="track"))
        test_rows = pool.map(render, test, chunksize=16)
    write_annotations(root, layout, train, train_rows, test_rows)
    return root


def write_annotations(root: Path, layout: str, train: list[Job], train_rows: list, test_rows: list) -> None:
    """GT-000NN.csv per class + GT-final_test.csv (official), or Train/Test/Meta.csv (Kaggle)."""
    flat_test = [row for rows in test_rows for row in rows]
    if layout == OFFICIAL:
        by_class: dict[int, list] = {}
        for job, rows in zip(train, train_rows, strict=True):
            by_class.setdefault(job.class_id, []).extend(rows)
        for c, rows in by_class.items():
            _csv(root / "GTSRB/Final_Training/Images" / f"{c:05d}" / f"GT-{c:05d}.csv", ";", "Filename", rows)
        _csv(root / "GTSRB/Final_Test/Images/GT-final_test.csv", ";", "Filename", flat_test)
        return
    _csv(root / "Train.csv", ",", "Path", [row for rows in train_rows for row in rows], name_last=True)
    _csv(root / "Test.csv", ",", "Path", flat_test, name_last=True)
    (root / "Meta").mkdir(exist_ok=True)
    meta = ["Path,ClassId,ShapeId,ColorId,SignId"]
    for c in range(GTSRB_NUM_CLASSES):
        sign = draw_sign(c)
        cv2.imwrite(str(root / "Meta" / f"{c}.png"), sign)
        meta.append(f"Meta/{c}.png,{c},{','.join(map(str, shape_and_colour(c)))},")  # no StVO sign number
    (root / "Meta.csv").write_text("\n".join(meta) + "\n")


def _csv(path: Path, sep: str, name_column: str, rows: list[list], name_last: bool = False) -> None:
    """One annotation file in GTSRB's column order."""
    header = [*COLUMNS, name_column] if name_last else [name_column, *COLUMNS]
    lines = [sep.join(header)]
    lines += [sep.join(str(v) for v in ([*r[1:], r[0]] if name_last else r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")

