"""Write tiny GTSRB folders in either layout, image by image, for the prepare tests.

Each image is a coloured square "sign" (colour from the class) on a grey border, so a decoded
record tells which class and which crop it came from.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.contract import RecordFiles

HEADER = ("Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A distinct BGR colour per class."""
    return (37 * class_id % 256, 91 * class_id % 256, 160 + 2 * class_id)


def sign_image(class_id: int, side: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A side x side image: a class-coloured sign with a 10% grey border, and its inclusive ROI."""
    image = np.full((side, side, 3), 128, np.uint8)
    border = max(1, side // 10)
    image[border : side - border, border : side - border] = class_colour(class_id)
    return image, (border, border, side - border - 1, side - border - 1)


def write_official(root: Path, tracks: int = 2, frames: int = 3, test_per_class: int = 2, ext: str = ".ppm") -> Path:
    """GTSRB/Final_Training/Images/000NN/TTTTT_FFFFF.ppm + GT csvs, and Final_Test."""
    train_dir = root / "GTSRB" / "Final_Training" / "Images"
    for c in range(GTSRB_NUM_CLASSES):
        folder = train_dir / f"{c:05d}"
        folder.mkdir(parents=True)
        rows = []
        for t in range(tracks):
            for f in range(frames):
                name = f"{t:05d}_{f:05d}{ext}"
                rows.append(_write(folder / name, name, c, 20 + 4 * f))
        _csv(folder / f"GT-{c:05d}.csv", ";", "Filename", rows)
    test_dir = root / "GTSRB" / "Final_Test" / "Images"
    test_dir.mkdir(parents=True)
    rows = []
    for i in range(GTSRB_NUM_CLASSES * test_per_class):
        name = f"{i:05d}{ext}"
        rows.append(_write(test_dir / name, name, i % GTSRB_NUM_CLASSES, 24))
    _csv(test_dir / "GT-final_test.csv", ";", "Filename", rows)
    return root


def write_kaggle(root: Path, tracks: int = 2, frames: int = 3, test_per_class: int = 2) -> Path:
    """Train/<c>/<c:05d>_<t:05d>_<f:05d>.png + Train.csv, Test/*.png + Test.csv (Path last)."""
    rows = []
    for c in range(GTSRB_NUM_CLASSES):
        (root / "Train" / str(c)).mkdir(parents=True)
        for t in range(tracks):
            for f in range(frames):
                rel = f"Train/{c}/{c:05d}_{t:05d}_{f:05d}.png"
                rows.append(_write(root / rel, rel, c, 20 + 4 * f))
    _csv(root / "Train.csv", ",", "Path", rows, name_last=True)
    (root / "Test").mkdir()
    rows = [_write(root / f"Test/{i:05d}.png", f"Test/{i:05d}.png", i % GTSRB_NUM_CLASSES, 24)
            for i in range(GTSRB_NUM_CLASSES * test_per_class)]
    _csv(root / "Test.csv", ",", "Path", rows, name_last=True)
    return root


def _write(path: Path, name: str, class_id: int, side: int) -> list:
    image, roi = sign_image(class_id, side)
    cv2.imwrite(str(path), image)
    return [name, side, side, *roi, class_id]


def _csv(path: Path, sep: str, name_column: str, rows: list[list], name_last: bool = False) -> None:
    header = [*HEADER, name_column] if name_last else [name_column, *HEADER]
    lines = [sep.join(header)]
    for row in rows:
        fields = [*row[1:], row[0]] if name_last else row
        lines.append(sep.join(str(v) for v in fields))
    path.write_text("\n".join(lines) + "\n")


def rewrite_csv_row(csv_path: Path, match: str, column: str, value: str) -> None:
    """Set `column` of the row whose first or last field is `match` (to plant a bad label)."""
    sep = ";" if csv_path.read_text().startswith("Filename") else ","
    lines = csv_path.read_text().splitlines()
    header = lines[0].split(sep)
    for i, line in enumerate(lines[1:], start=1):
        fields = line.split(sep)
        if match in (fields[0], fields[-1]):
            fields[header.index(column)] = value
            lines[i] = sep.join(fields)
    csv_path.write_text("\n".join(lines) + "\n")


def corrupt_record(files: RecordFiles, position: int) -> None:
    """Replace one record's image by bytes no decoder reads, keeping .rec and .idx consistent."""
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    records = [reader.read_idx(key) for key in reader.keys]
    reader.close()
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    for i, record in enumerate(records):
        if i == position:
            header, _ = mx.recordio.unpack(record)
            record = mx.recordio.pack(header, b"\xff\xd8\xff\xe0 not really a JPEG" * 20)
        writer.write_idx(i, record)
    writer.close()


def write_folders(root: Path, names: list[str], per_class: int, test_per_class: int = 0, ext: str = ".png") -> Path:
    """Your own data: train/<name>/img_NNN<ext> (and test/<name>/... when test_per_class), a
    class-coloured sign on a grey border per image, sizes varying like real photos."""
    for split, count in (("train", per_class), ("test", test_per_class)):
        for class_id, name in enumerate(names):
            if not count:
                continue
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image, _ = sign_image(class_id, 24 + 2 * (i % 8))
                cv2.imwrite(str(folder / f"img_{i:03d}{ext}"), image)
    return root
