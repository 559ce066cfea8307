"""Reading a data set in one of three layouts, detected from the folder given.

official: GTSRB/Final_Training/Images/000NN/TTTTT_FFFFF.ppm + GT-000NN.csv (';'-separated), and
          GTSRB/Final_Test/Images/NNNNN.ppm + GT-final_test.csv (with ClassId).
kaggle:   Train/<ClassId>/<ClassId:05d>_<track>_<frame>.png + Train.csv, Test/*.png + Test.csv
          (','-separated, a Path column), optional Meta.csv.
folders:  your own images, one folder per class: train/<class name>/*.{jpg,jpeg,png,ppm}, optional
          test/<class name>/... (without it prepare holds out a seeded, stratified test split),
          optional classes.json (the class names in class-id order; default: the sorted folder names).
          No ROI (whole images) and no tracks (every image is its own).
All yield the same `Sample` records and the class names; nothing here opens an image.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common.classes import GTSRB_CLASS_NAMES, check_class_names
from gtsrb.common.contract import CLASSES_FILE
from gtsrb.common.failure import StepError

OFFICIAL, KAGGLE, FOLDERS = "official", "kaggle", "folders"
FOLDERS_TRAIN, FOLDERS_TEST = "train", "test"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm")
ROI_COLUMNS = ("Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2")
NUMBER_COLUMNS = ("Width", "Height", *ROI_COLUMNS, "ClassId")
# TTTTT_FFFFF (official) or CCCCC_TTTTT_FFFFF (Kaggle): the track is the physical sign.
TRACK_PATTERN = re.compile(r"^(?:\d+_)?(\d+)_(\d+)$")


@dataclass(frozen=True)
class Sample:
    """One annotated image: where it is, its class, its track and its sign's box."""

    path: Path
    class_id: int
    track: str  # "<class>/<track>" for training images; "test/<name>" for test images
    width: int
    height: int
    roi: tuple[int, int, int, int] | None  # x1, y1, x2, y2: inclusive pixel positions of the sign; None: whole image


@dataclass(frozen=True)
class Dataset:
    """The training and test samples of one data folder, and its class names (index = class id)."""

    layout: str
    root: Path
    train: list[Sample]
    test: list[Sample]  # empty for a folder-per-class set without test/: prepare holds one out
    annotation_files: list[Path]
    class_names: list[str]


def detect(folder: str | Path) -> tuple[str, Path]:
    """The layout of `folder` and the root that holds it, or a StepError saying what was expected."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StepError(f"{folder}: no such data folder; pass the folder that holds your data ({LAYOUTS_TEXT}).")
    for root in (folder / "GTSRB", folder):
        if (root / "Final_Training" / "Images").is_dir():
            return OFFICIAL, root
    if (folder / "Train.csv").is_file() and (folder / "Test.csv").is_file():
        return KAGGLE, folder
    if (folder / FOLDERS_TRAIN).is_dir():
        return FOLDERS, folder
    zips = sorted(p.name for p in folder.glob("*.zip"))
    hint = f" It holds {', '.join(zips)}: unzip them first." if zips else ""
    raise StepError(f"{folder}: unknown layout, expected {LAYOUTS_TEXT}.{hint}")


LAYOUTS_TEXT = (
    "GTSRB/Final_Training/Images (GTSRB's official archives), Train.csv + Test.csv (GTSRB on Kaggle) "
    "or train/<class name>/ image folders (your own data, docs/data.md)"
)


def read_dataset(folder: str | Path) -> Dataset:
    """Detect the layout of `folder` and read all its annotations."""
    layout, root = detect(folder)
    if layout == FOLDERS:
        return read_folders(root)
    reader = _read_official if layout == OFFICIAL else _read_kaggle
    train, test, files = reader(root)
    return Dataset(layout=layout, root=root, train=train, test=test, annotation_files=files,
                   class_names=list(GTSRB_CLASS_NAMES))


def read_folders(root: Path) -> Dataset:
    """train/<class>/* (and test/<class>/* when present) with the class names of classes.json or the folders."""
    found = sorted(p.name for p in (root / FOLDERS_TRAIN).iterdir() if p.is_dir() and not p.name.startswith("."))
    names_file = root / CLASSES_FILE
    names = _classes_json(names_file, found) if names_file.is_file() else found
    check_class_names(names, root / FOLDERS_TRAIN if not names_file.is_file() else names_file)
    train = _read_class_folders(root, FOLDERS_TRAIN, names)
    has_test = (root / FOLDERS_TEST).is_dir()
    test = _read_class_folders(root, FOLDERS_TEST, names) if has_test else []
    files = [names_file] if names_file.is_file() else []
    return Dataset(layout=FOLDERS, root=root, train=train, test=test, annotation_files=files, class_names=names)


def _classes_json(path: Path, found: list[str]) -> list[str]:
    """classes.json: every training folder must be listed (a listed class without a folder fails later)."""
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise StepError(f"{path}: not readable JSON ({err}); it lists the class folders in class-id order.") from err
    names = check_class_names(names, path)
    unlisted = [n for n in found if n not in names]
    if unlisted:
        raise StepError(f"{path} does not list the training folder(s) {', '.join(map(repr, unlisted))}; add them or remove the folders.")
    return names


def _read_class_folders(root: Path, split: str, names: list[str]) -> list[Sample]:
    """One Sample per image file under root/split/<class>/; other files and folders are errors, not skips."""
    samples = []
    for folder in sorted(p for p in (root / split).iterdir() if not p.name.startswith(".")):
        if not folder.is_dir():
            raise StepError(f"{folder}: {split}/ holds one folder per class and nothing else; move this file away.")
        if folder.name not in names:
            raise StepError(f"{folder}: no training class is called {folder.name!r}; test folders must match train/'s class folders.")
        class_id = names.index(folder.name)
        for image in sorted(folder.iterdir()):
            if image.name.startswith("."):
                continue
            if image.suffix.lower() not in IMAGE_SUFFIXES or not image.is_file():
                raise StepError(f"{image}: not an image file ({', '.join(IMAGE_SUFFIXES)}); remove it or convert it.")
            # every image its own track: the validation/test hold-out is stratified by class, per image
            samples.append(Sample(image, class_id, f"{split}/{folder.name}/{image.name}", 0, 0, None))
    return samples


def _read_official(root: Path) -> tuple[list[Sample], list[Sample], list[Path]]:
    """Per-class GT-000NN.csv files for training, GT-final_test.csv for the test set."""
    train: list[Sample] = []
    files: list[Path] = []
    class_dirs = sorted(p for p in (root / "Final_Training" / "Images").iterdir() if p.is_dir())
    if not class_dirs:
        raise StepError(f"{root / 'Final_Training' / 'Images'}: no class folders (000NN); is the archive complete?")
    for class_dir in class_dirs:
        csv_path = class_dir / f"GT-{class_dir.name}.csv"
        if not csv_path.is_file():
            raise StepError(f"{csv_path} is missing: every class folder needs its annotation file.")
        files.append(csv_path)
        train += _read_csv(csv_path, ";", "Filename", class_dir, track_prefix=class_dir.name)
    test_csv = _find_test_csv(root)
    files.append(test_csv)
    test = _read_csv(test_csv, ";", "Filename", root / "Final_Test" / "Images", track_prefix=None)
    return train, test, files


def _find_test_csv(root: Path) -> Path:
    """GT-final_test.csv (with ClassId) ships in its own archive: look where people unzip it."""
    for candidate in (root / "Final_Test" / "Images", root, root.parent):
        if (candidate / "GT-final_test.csv").is_file():
            return candidate / "GT-final_test.csv"
    raise StepError(
        f"{root / 'Final_Test' / 'Images' / 'GT-final_test.csv'} is missing: the test labels come in "
        "GTSRB_Final_Test_GT.zip; unzip it into Final_Test/Images (GT-final_test.test.csv has no ClassId)."
    )


def _read_kaggle(root: Path) -> tuple[list[Sample], list[Sample], list[Path]]:
    """Train.csv and Test.csv, whose Path column is relative to the root."""
    train = _read_csv(root / "Train.csv", ",", "Path", root, track_prefix="")
    test = _read_csv(root / "Test.csv", ",", "Path", root, track_prefix=None)
    return train, test, [root / "Train.csv", root / "Test.csv"]


def _read_csv(path: Path, delimiter: str, name_column: str, base: Path, track_prefix: str | None) -> list[Sample]:
    """Rows of one annotation file as Samples; missing columns or bad numbers name file and line."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            table = [row for row in csv.reader(f, delimiter=delimiter) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StepError(f"{path}: cannot read the annotation file ({err}).") from err
    header = [col.strip() for col in table[0]] if table else []
    missing = [col for col in (name_column, *NUMBER_COLUMNS) if col not in header]
    if missing:
        raise StepError(
            f"{path}: missing column(s) {', '.join(missing)}; expected "
            f"{delimiter.join((name_column, *NUMBER_COLUMNS))}."
        )
    for line, row in enumerate(table[1:], start=2):
        if len(row) < len(header):
            raise StepError(f"{path}, line {line}: {len(row)} fields where the header has {len(header)}; is the row cut short?")
    rows = [dict(zip(header, row, strict=False)) for row in table[1:]]
    return [_sample(row, path, line, name_column, base, track_prefix) for line, row in enumerate(rows, start=2)]


def _sample(row: dict, path: Path, line: int, name_column: str, base: Path, track_prefix: str | None) -> Sample:
    """One CSV row as a Sample; labels outside GTSRB's classes are an error, not a skip."""
    try:
        width, height, x1, y1, x2, y2, class_id = (int(row[col]) for col in NUMBER_COLUMNS)
    except (TypeError, ValueError) as err:
        raise StepError(f"{path}, line {line}: a number is expected in {', '.join(NUMBER_COLUMNS)} ({err}).") from err
    if not 0 <= class_id < len(GTSRB_CLASS_NAMES):
        raise StepError(f"{path}, line {line}: ClassId {class_id} is outside GTSRB's 0-{len(GTSRB_CLASS_NAMES) - 1}.")
    image = base / row[name_column]
    return Sample(
        path=image,
        class_id=class_id,
        track=_track(image, class_id, track_prefix),
        width=width,
        height=height,
        roi=(x1, y1, x2, y2),
    )


def _track(image: Path, class_id: int, prefix: str | None) -> str:
    """`<class>/<track>` from TTTTT_FFFFF names; an unmatched name is a track of its own."""
    if prefix is None:
        return f"test/{image.stem}"
    match = TRACK_PATTERN.match(image.stem)
    track = match.group(1) if match else image.stem
    return f"{class_id:02d}/{track}"
