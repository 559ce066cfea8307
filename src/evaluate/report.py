"""evaluation.json in SageMaker's model-quality format, and per_class.csv.

The `multiclass_classification_metrics` block follows the Model Monitor / Model Registry format
for multiclass classification: each metric is `{"value", "standard_deviation"}`, the confusion
matrix is `{"<true label>": {"<predicted label>": count}}`, and `*_best_constant_classifier`
gives the baseline of always predicting the most frequent class. The pipeline's condition reads
contract.ACCURACY_JSON_PATH from it. What that format has no place for (macro averages, counts,
the most confused pairs) goes under contract.EVALUATION_DETAILS_KEY.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from gtsrb.common import contract
from gtsrb.evaluate import metrics as m

# Metrics in contract.QUALITY_METRICS_KEY besides the confusion matrix, each also as *_best_constant_classifier.
REPORTED: tuple[str, ...] = (
    "accuracy",
    "weighted_recall",
    "weighted_precision",
    "weighted_f0_5",
    "weighted_f1",
    "weighted_f2",
)
PER_CLASS_COLUMNS: tuple[str, ...] = (
    "class_id", "class_name", "support", "predicted", "correct", "precision", "recall", "f1",
)


def _metric(value: float, std: float) -> dict[str, float]:
    return {"value": value, "standard_deviation": std}


def quality_metrics(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """The SageMaker `multiclass_classification_metrics` block (accuracy std: binomial; rest: bootstrap)."""
    cm = m.confusion_matrix(labels, predicted, num_classes)
    constant = m.constant_predictions(labels)
    values, stds = m.summary(cm), m.bootstrap_std(labels, predicted, num_classes)
    base_values = m.summary(m.confusion_matrix(labels, constant, num_classes))
    base_stds = m.bootstrap_std(labels, constant, num_classes)
    stds["accuracy"] = m.binomial_std(values["accuracy"], len(labels))
    base_stds["accuracy"] = m.binomial_std(base_values["accuracy"], len(labels))
    block: dict = {"confusion_matrix": confusion_dict(cm)}
    for name in REPORTED:
        block[name] = _metric(values[name], stds[name])
    for name in REPORTED:
        block[f"{name}_best_constant_classifier"] = _metric(base_values[name], base_stds[name])
    return block


def confusion_dict(cm: np.ndarray) -> dict[str, dict[str, int]]:
    """{"<true label>": {"<predicted label>": count}} over every class of the model."""
    return {str(i): {str(j): int(cm[i, j]) for j in range(cm.shape[1])} for i in range(cm.shape[0])}


def details(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    """Counts, macro averages and the most confused class pairs (names included, for people)."""
    cm = m.confusion_matrix(labels, predicted, len(class_names))
    values, support = m.summary(cm), cm.sum(axis=1)
    pairs = [
        {
            "true": i,
            "true_name": class_names[i],
            "predicted": j,
            "predicted_name": class_names[j],
            "count": count,
            "share_of_true_class": count / int(support[i]),
        }
        for i, j, count in m.top_confused(cm)
    ]
    return {
        "records": int(len(labels)),
        "correct": int(np.trace(cm)),
        "num_classes": len(class_names),
        "classes_in_test_set": int(np.count_nonzero(support)),
        # classes without a test record (prepare's allow_missing_test_classes): no score measures them
        "unscored_classes": [{"class_id": i, "class_name": class_names[i]} for i in np.flatnonzero(support == 0).tolist()],
        "macro_precision": values["macro_precision"],
        "macro_recall": values["macro_recall"],
        "macro_f1": values["macro_f1"],
        "standard_deviation_method": (
            f"accuracy: binomial sqrt(p(1-p)/n); others: {m.BOOTSTRAP_SAMPLES} bootstrap resamples "
            f"(seed {m.BOOTSTRAP_SEED})"
        ),
        "top_confused_pairs": pairs,
    }


def build_report(labels: np.ndarray, predicted: np.ndarray, class_names: list[str], sources: dict) -> dict:
    """The whole evaluation.json document; `sources` records which model and test set were used."""
    return {
        contract.QUALITY_METRICS_KEY: quality_metrics(labels, predicted, len(class_names)),
        contract.EVALUATION_DETAILS_KEY: {**details(labels, predicted, class_names), **sources},
    }


def validate_report(report: dict) -> None:
    """Raise ValueError unless `report` has the structure the pipeline and the registry read."""
    block = report.get(contract.QUALITY_METRICS_KEY)
    if not isinstance(block, dict):
        raise ValueError(f"missing {contract.QUALITY_METRICS_KEY}")
    for name in (*REPORTED, *(f"{n}_best_constant_classifier" for n in REPORTED)):
        entry = block.get(name)
        if not isinstance(entry, dict) or set(entry) != {"value", "standard_deviation"}:
            raise ValueError(f"{contract.QUALITY_METRICS_KEY}.{name} must be {{value, standard_deviation}}")
        if not all(isinstance(v, float) and math.isfinite(v) for v in entry.values()):
            raise ValueError(f"{contract.QUALITY_METRICS_KEY}.{name} must hold finite numbers")
        if not 0.0 <= entry["value"] <= 1.0:
            raise ValueError(f"{contract.QUALITY_METRICS_KEY}.{name}.value is outside [0, 1]")
    cm = block.get("confusion_matrix")
    if not isinstance(cm, dict) or not all(isinstance(row, dict) for row in cm.values()):
        raise ValueError(f"{contract.QUALITY_METRICS_KEY}.confusion_matrix must map true label -> predicted label -> count")
    total = sum(int(v) for row in cm.values() for v in row.values())
    if total != report.get(contract.EVALUATION_DETAILS_KEY, {}).get("records"):
        raise ValueError("the confusion matrix does not add up to the number of records")
    contract.json_get(report, contract.ACCURACY_JSON_PATH)  # the path the pipeline's condition reads must exist


def write_report(report: dict, folder: Path) -> Path:
    """Write evaluation.json (indented: people read it in the console and the registry)."""
    path = folder / contract.EVALUATION_FILE
    path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def write_per_class(labels: np.ndarray, predicted: np.ndarray, class_names: list[str], folder: Path) -> Path:
    """per_class.csv: one row per class of the model, with its support in the test set."""
    stats = m.per_class(m.confusion_matrix(labels, predicted, len(class_names)))
    path = folder / contract.PER_CLASS_FILE
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PER_CLASS_COLUMNS)
        for i, name in enumerate(class_names):
            counts = [int(stats[k][i]) for k in ("support", "predicted", "correct")]
            scores = [f"{stats[k][i]:.6f}" for k in ("precision", "recall", "f1")]
            writer.writerow([i, name, *counts, *scores])
    return path


def evaluation_metrics(report: dict) -> dict[str, float]:
    """Flat test metrics of an evaluation.json: test_accuracy, test_weighted_f1, test_macro_f1, ..."""
    metrics: dict[str, float] = {}
    for name, entry in report.get(contract.QUALITY_METRICS_KEY, {}).items():
        if isinstance(entry, dict) and "value" in entry and not name.endswith("_best_constant_classifier"):
            metrics[f"test_{name}"] = float(entry["value"])
            if entry.get("standard_deviation") is not None:
                metrics[f"test_{name}_std"] = float(entry["standard_deviation"])
    for name, value in report.get(contract.EVALUATION_DETAILS_KEY, {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[f"test_{name}"] = float(value)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}
