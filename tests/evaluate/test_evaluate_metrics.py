"""The numpy metrics equal scikit-learn's on awkward label sets (absent classes, no predictions)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from gtsrb.evaluate import metrics as m
from gtsrb.evaluate import report

K = 43


def random_case(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Labels from 12 of the 43 classes; predictions mostly right, some into classes never true."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.arange(0, 36, 3), size=n)
    predicted = np.where(rng.random(n) < 0.7, labels, rng.integers(0, K, size=n))
    return labels, predicted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summary_equals_sklearn(seed: int) -> None:
    labels, predicted = random_case(seed)
    got = m.summary(m.confusion_matrix(labels, predicted, K))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=1e-12)
    for avg in ("weighted", "macro"):
        p, r, f1, _ = skm.precision_recall_fscore_support(labels, predicted, average=avg, zero_division=0)
        assert got[f"{avg}_precision"] == pytest.approx(p, abs=1e-12)
        assert got[f"{avg}_recall"] == pytest.approx(r, abs=1e-12)
        assert got[f"{avg}_f1"] == pytest.approx(f1, abs=1e-12)
    for name, beta in m.BETAS.items():
        expected = skm.fbeta_score(labels, predicted, beta=beta, average="weighted", zero_division=0)
        assert got[f"weighted_{name}"] == pytest.approx(expected, abs=1e-12)


def test_per_class_and_confusion_equal_sklearn() -> None:
    labels, predicted = random_case(3)
    cm = m.confusion_matrix(labels, predicted, K)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(labels, predicted, labels=range(K)))
    stats = m.per_class(cm)
    p, r, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=range(K), average=None, zero_division=0
    )
    np.testing.assert_allclose(stats["precision"], p, atol=1e-12)
    np.testing.assert_allclose(stats["recall"], r, atol=1e-12)
    np.testing.assert_allclose(stats["f1"], f1, atol=1e-12)
    np.testing.assert_array_equal(stats["support"], support)


def test_best_constant_classifier_predicts_the_majority() -> None:
    labels = np.array([4, 4, 4, 7, 9])
    block = report.quality_metrics(labels, labels, K)
    constant = np.full(5, 4)
    assert block["accuracy_best_constant_classifier"]["value"] == pytest.approx(0.6)
    expected_f1 = skm.f1_score(labels, constant, average="weighted", zero_division=0)
    assert block["weighted_f1_best_constant_classifier"]["value"] == pytest.approx(expected_f1)


def test_accuracy_std_is_binomial_and_bootstrap_is_reproducible() -> None:
    labels, predicted = random_case(4)
    block = report.quality_metrics(labels, predicted, K)
    p = skm.accuracy_score(labels, predicted)
    assert block["accuracy"]["standard_deviation"] == pytest.approx(np.sqrt(p * (1 - p) / len(labels)))
    # the bootstrap spread of F1 is the same order as accuracy's binomial error, and seeded
    assert 0.3 < block["weighted_f1"]["standard_deviation"] / block["accuracy"]["standard_deviation"] < 3
    assert report.quality_metrics(labels, predicted, K) == block


def test_top_confused_pairs_are_largest_off_diagonal_cells() -> None:
    labels = np.array([1, 1, 1, 1, 2, 2, 2, 3, 3])
    predicted = np.array([1, 2, 2, 2, 3, 2, 2, 3, 1])
    assert m.top_confused(m.confusion_matrix(labels, predicted, K), limit=2) == [(1, 2, 3), (2, 3, 1)]
    assert m.top_confused(m.confusion_matrix(labels, labels, K)) == []
