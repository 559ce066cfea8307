"""The true class of images `make predict` reads, when the input says it: a CSV beside them, or
a folder per class.

A CSV (GTSRB's `GT-*.csv` with `Filename;ClassId`, Kaggle's `Test.csv` with `Path,ClassId`, or
any file with a file and a class column) names images relative to its own folder. Without one, an
image in a folder named like a class of the model (its name, or its id as in GTSRB's `00013`)
has that class. Labels may be class ids or class names.
"""

from __future__ import annotations

import csv
from pathlib import Path

FILE_COLUMNS = ("Filename", "Path", "filename", "path", "file")
LABEL_COLUMNS = ("ClassId", "class_id", "label", "class", "class_name")


def read_csv(path: Path) -> dict[Path, str] | None:
    """{image path: label text} of a labelled CSV, or None when it has no file or class column."""
    text = path.read_text(errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    columns = rows[0].keys() if rows else []
    file_column = next((c for c in FILE_COLUMNS if c in columns), None)
    label_column = next((c for c in LABEL_COLUMNS if c in columns), None)
    if file_column is None or label_column is None:
        return None
    return {(path.parent / row[file_column]).resolve(): row[label_column].strip() for row in rows if row.get(file_column)}


def csv_files(paths: list[Path]) -> list[Path]:
    """The CSV files named, and those inside the named folders."""
    found = []
    for path in paths:
        found += sorted(path.rglob("*.csv")) if path.is_dir() else [path] if path.suffix.lower() == ".csv" else []
    return found


def class_id(text: str, class_names: list[str]) -> int | None:
    """A label (class name, or id such as 13 or 00013) as a class id of the model, or None."""
    lowered = {name.lower(): i for i, name in enumerate(class_names)}
    if text.lower() in lowered:
        return lowered[text.lower()]
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    return None


def true_classes(paths: list[Path], files: list[Path], class_names: list[str]) -> dict[Path, int]:
    """{file: true class id} for every file whose class the CSVs or its folder's name give."""
    listed: dict[Path, str] = {}
    for table in csv_files(paths):
        listed.update(read_csv(table) or {})
    labels = {}
    for file in files:
        text = listed.get(file.resolve(), file.parent.name)
        found = class_id(text, class_names)
        if found is not None:
            labels[file] = found
    return labels
