"""The per-epoch log line and the SageMaker metric definitions that parse it: one contract.

SageMaker only sees metrics through regexes applied to the training job's stdout; the pipeline
imports METRIC_DEFINITIONS from here, and tests check them against real lines from epoch_line().
"""

from __future__ import annotations

# Order and names of the key=value fields of one epoch line.
EPOCH_FIELDS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "img_per_s", "seconds")

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _field(name: str) -> str:
    """A field of an epoch line only (`epoch=N ... name=V`): the hyperparameters line has `lr=`
    too, and would give the learning-rate metric an extra first point."""
    return rf"\bepoch=[0-9]+ (?:\S+ )*?{name}={_NUMBER}"


METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "train:loss", "Regex": _field("train_loss")},
    {"Name": "train:accuracy", "Regex": _field("train_acc")},
    {"Name": "validation:accuracy", "Regex": _field("val_acc")},
    {"Name": "train:learning_rate", "Regex": _field("lr")},
    {"Name": "train:images_per_second", "Regex": _field("img_per_s")},
    {"Name": "train:epoch_seconds", "Regex": _field("seconds")},
]


def hyperparameters_line(values: dict[str, object]) -> str:
    """`event=hyperparameters preset=cpu ... lr=0.1 ...`: the run's settings, logged once at start."""
    return "event=hyperparameters " + " ".join(f"{k}={v}" for k, v in values.items())


def epoch_line(values: dict[str, float | int]) -> str:
    """`epoch=3 train_loss=0.4100 ... seconds=12.3`: EPOCH_FIELDS present in `values`, in order."""
    parts = []
    for key in EPOCH_FIELDS:
        if key in values:
            value = values[key]
            parts.append(f"{key}={value}" if isinstance(value, int) else f"{key}={value:.6g}")
    return " ".join(parts)
