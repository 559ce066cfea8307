"""The per-epoch log line and the SageMaker metric definitions that parse it: one contract.

SageMaker only sees metrics through regexes applied to the training job's stdout; the pipeline
imports METRIC_DEFINITIONS from here, and tests check them against real lines from epoch_line().
"""

from __future__ import annotations

# Order and names of the key=value fields of one epoch line.
EPOCH_FIELDS: tuple[str, ...] = ("epoch", "train_loss", "train_acc", "val_acc", "lr", "img_per_s", "seconds")

_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _field(name: str) -> str:
    """A field of an epoch line only (`epoch=N/M ... name=V`): the hyperparameters line has `lr=`
    too, and would give the learning-rate metric an extra first point."""
    return rf"\bepoch=[0-9]+(?:/[0-9]+)? (?:\S+ )*?{name}={_NUMBER}"


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


def epoch_line(values: dict[str, float | int], epochs: int | None = None, eta_s: float | None = None,
               val_on_training_data: bool = False) -> str:
    """`epoch=3/9 train_loss=0.4100 ... seconds=12.3 eta=1m12s`: EPOCH_FIELDS present in
    `values`, in order; `val_on=training_data` after val_acc when validation data was trained on."""
    parts = []
    for key in EPOCH_FIELDS:
        if key in values:
            value = values[key]
            text = f"{value}" if isinstance(value, int) else f"{value:.6g}"
            parts.append(f"{key}={text}/{epochs}" if key == "epoch" and epochs else f"{key}={text}")
            if key == "val_acc" and val_on_training_data:
                parts.append("val_on=training_data")
    if eta_s is not None:
        parts.append(f"eta={duration(eta_s)}")
    return " ".join(parts)


def duration(seconds: float) -> str:
    """`45s`, `12m05s` or `1h02m`: short enough for a log line."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
