"""predictions.csv: one row per test image, the evaluation's every prediction, for people and tools.

Columns: the record's position in test.rec, its file (relative to the data set's root, from the
prepare step's test.lst; empty when the split has no .lst), the true and predicted class ids,
the probability of the prediction and of the true class, and the next two classes of the top 3
with their probabilities. The report's misclassified picture is drawn from this file
(`read_predictions` + `worst_misclassified`), so the picture and the table cannot disagree.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from gtsrb.common.contract import RecordFiles
from gtsrb.common.failure import StepError

TOP_K = 3


@dataclass(frozen=True)
class Prediction:
    """One row of predictions.csv."""

    record: int  # position in test.rec (file order)
    file: str  # the image file, relative to the data set's root ("" without a .lst)
    true_class: int
    predicted_class: int
    probability: float  # of the predicted class
    true_class_probability: float
    top2_class: int
    top2_probability: float
    top3_class: int
    top3_probability: float

    @property
    def wrong(self) -> bool:
        return self.predicted_class != self.true_class


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Prediction))


def record_files_named(files: RecordFiles, count: int) -> list[str]:
    """The file of each record from the split's .lst (`index<TAB>label<TAB>path`), else empty names."""
    names = [""] * count
    if not files.lst.is_file():
        return names
    with open(files.lst, encoding="utf-8") as lst:
        for line in lst:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and parts[0].isdigit() and int(parts[0]) < count:
                names[int(parts[0])] = parts[-1]
    return names


def rows(labels: np.ndarray, probs: np.ndarray, files: list[str]) -> list[Prediction]:
    """The rows of every record, in file order."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :TOP_K]
    out = []
    for i, (label, top) in enumerate(zip(labels, order, strict=True)):
        top = list(top) + [top[-1]] * (TOP_K - len(top))  # fewer than 3 classes: repeat the last
        p = probs[i]
        out.append(Prediction(i, files[i], int(label), int(top[0]), float(p[top[0]]), float(p[int(label)]),
                              int(top[1]), float(p[top[1]]), int(top[2]), float(p[top[2]])))
    return out


def write_predictions(predictions: list[Prediction], path: Path) -> Path:
    """Write predictions.csv (probabilities with 6 decimals)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in predictions:
            writer.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in (getattr(row, c) for c in COLUMNS)])
    return path


def read_predictions(path: Path) -> list[Prediction]:
    """Read what write_predictions wrote; StepError naming the file if it is not such a table."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise StepError(f"{path} is not a predictions table: its columns are {reader.fieldnames}, expected {list(COLUMNS)}.")
            types = {f.name: f.type for f in fields(Prediction)}
            convert = {"int": int, "float": float, "str": str}
            return [Prediction(**{k: convert[str(types[k])](v) for k, v in line.items()}) for line in reader]
    except (OSError, ValueError) as err:
        raise StepError(f"{path} cannot be read as a predictions table ({err}).") from err


def worst_misclassified(predictions: list[Prediction], limit: int) -> list[Prediction]:
    """Wrong predictions, the most confident first (ties: file order)."""
    wrong = [p for p in predictions if p.wrong]
    return sorted(wrong, key=lambda p: -p.probability)[:limit]
