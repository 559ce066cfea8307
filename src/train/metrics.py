"""The per-epoch log line and the SageMaker metric definitions that parse it: one contract.

SageMaker only sees metrics through regexes applied to the training job's stdout; the pipeline
imports METRIC_DEFINITIONS from here, and tests check them against real lines from epoch_line().
"""

from __future__ import annotations

# Order and names of the key=value fields of one epoch line.
EPOCH_FIELDS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "img_per_s", "seconds")

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"

METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": rf"\btrain_loss={_NUMBER}"},
    {"Name": "train:accuracy", "Regex": rf"\btrain_acc={_NUMBER}"},
    {"Name": "validation:accuracy", "Regex": rf"\bval_acc={_NUMBER}"},
    {"Name": "train:learning_rate", "Regex": rf"\blr={_NUMBER}"},
    {"Name": "train:images_per_second", "Regex": rf"\bimg_per_s={_NUMBER}"},
    {"Name": "train:epoch_seconds", "Regex": rf"\bseconds={_NUMBER}"},
]


def epoch_line(values: dict[str, float | int]) -> str:
    """`epoch=3 train_loss=0.4100 ... seconds=12.3`: EPOCH_FIELDS present in `values`, in order."""
    parts = []
    for key in EPOCH_FIELDS:
        if key in values:
            value = values[key]
            parts.append(f"{key}={value}" if isinstance(value, int) else f"{key}={value:.6g}")
    return " ".join(parts)
