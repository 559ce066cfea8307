"""Classification metrics from labels and predictions, in numpy (no sklearn in the image).

Everything derives from the confusion matrix `cm[true, predicted]`, so a bootstrap resample only
has to rebuild the matrix. Conventions follow scikit-learn: a class without predictions has
precision 0, a class without records has recall 0 and weight 0 in weighted averages, and macro
averages run over the classes that occur in the labels or the predictions.
"""

from __future__ import annotations

import numpy as np

# F-beta variants SageMaker's model-quality report lists for multiclass classification.
BETAS: dict[str, float] = {"f0_5": 0.5, "f1": 1.0, "f2": 2.0}
BOOTSTRAP_SAMPLES = 200  # resamples for the standard deviation of the weighted metrics
BOOTSTRAP_SEED = 0  # fixed: the same predictions always give the same report


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """cm[i, j] = number of records of true class i predicted as class j."""
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class support, predicted count, correct count, precision, recall and F-betas."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    stats = {
        "support": support,
        "predicted": predicted,
        "correct": tp,
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
    }
    fn, fp = support - tp, predicted - tp
    for name, beta in BETAS.items():
        b2 = beta * beta
        # (1+b²)·tp / ((1+b²)·tp + b²·fn + fp) equals the P/R form wherever that is defined.
        stats[name] = _ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    return stats


def summary(cm: np.ndarray) -> dict[str, float]:
    """Accuracy, weighted precision/recall/F-betas and macro precision/recall/F1 of one matrix."""
    stats = per_class(cm)
    total = cm.sum()
    weights = stats["support"] / total
    present = (stats["support"] + stats["predicted"]) > 0
    result = {"accuracy": float(np.trace(cm) / total)}
    for name in ("precision", "recall", *BETAS):
        result[f"weighted_{name}"] = float(np.sum(weights * stats[name]))
    for name in ("precision", "recall", "f1"):
        result[f"macro_{name}"] = float(np.mean(stats[name][present]))
    return result


def constant_predictions(labels: np.ndarray) -> np.ndarray:
    """What the best constant classifier predicts: the most frequent label, for every record."""
    return np.full_like(labels, np.bincount(labels).argmax())


def bootstrap_std(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict[str, float]:
    """Standard deviation of every summary() metric over seeded bootstrap resamples of the records."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = len(labels)
    samples = []
    for _ in range(BOOTSTRAP_SAMPLES):
        pick = rng.integers(0, n, size=n)
        samples.append(summary(confusion_matrix(labels[pick], predicted[pick], num_classes)))
    return {key: float(np.std([s[key] for s in samples])) for key in samples[0]}


def binomial_std(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n independent records: sqrt(p(1-p)/n)."""
    return float(np.sqrt(accuracy * (1.0 - accuracy) / n))


def top_confused(cm: np.ndarray, limit: int = 10) -> list[tuple[int, int, int]]:
    """The `limit` largest off-diagonal cells as (true, predicted, count), largest first."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(order, off.shape), strict=True)]
    return [pair for pair in pairs if pair[2] > 0]
