"""The two pictures of the report: the confusion matrix and the worst misclassified test images."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in a processing container; must precede pyplot

import matplotlib.pyplot as plt
import mxnet as mx
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import FuncFormatter

from gtsrb.common.contract import RecordFiles
from gtsrb.common.failure import StepError

GRID_SIZE = 25  # misclassified images shown (5 x 5)
NAME_CHARS = 30  # class names are cut to this on the axes


def _short(index: int, name: str) -> str:
    """Axis label `12 Priority road`, cut so 43 of them fit."""
    label = f"{index} {name}"
    return label if len(label) <= NAME_CHARS else label[: NAME_CHARS - 1] + "…"


def plot_confusion(cm: np.ndarray, class_names: list[str], path: Path) -> Path:
    """Counts on a log colour scale (the diagonal dwarfs the errors), every non-zero cell written."""
    k = len(class_names)
    side = max(6.0, 0.32 * k + 3)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    shown = np.ma.masked_equal(cm, 0)
    image = ax.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(1, int(cm.max()))))
    for i, j in zip(*np.nonzero(cm), strict=True):
        colour = "black" if cm[i, j] > np.sqrt(max(1, cm.max())) else "white"
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6, color=colour)
    labels = [_short(i, n) for i, n in enumerate(class_names)]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(1, cm.sum())
    ax.set_title(f"Confusion matrix: {int(cm.sum())} test images, accuracy {accuracy:.4f}")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="images (log scale)")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 6, not 6×10⁰
    bar.ax.yaxis.set_major_formatter(plain)
    bar.ax.yaxis.set_minor_formatter(plain)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def worst_misclassified(labels: np.ndarray, probs: np.ndarray, limit: int = GRID_SIZE) -> np.ndarray:
    """Positions of wrong predictions, the most confident first (ties: file order)."""
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def read_images(files: RecordFiles, positions: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """RGB images of the records at these positions in file order (the order predict() returns).

    The label stored with each image is checked against the predicted row's label, so a
    mismatch between the picture and its caption cannot go unnoticed.
    """
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    try:
        keys = sorted(reader.keys, key=lambda key: reader.idx[key])  # file order = offset order
        images = []
        for pos in positions:
            header, bgr = mx.recordio.unpack_img(reader.read_idx(keys[pos]))
            stored = int(np.ravel(header.label)[0])
            if stored != int(labels[pos]):
                raise StepError(f"{files.rec}: record {pos} has label {stored}, predictions say {labels[pos]}.")
            images.append(bgr[:, :, ::-1])
        return images
    finally:
        reader.close()


def plot_misclassified(
    images: list[np.ndarray], truths: list[int], preds: list[int], confidences: list[float],
    class_names: list[str], path: Path,
) -> Path:
    """A grid of images titled with true and predicted class names and the model's confidence."""
    cols = 5
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 3.1), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, t, p, conf in zip(axes.flat, images, truths, preds, confidences, strict=False):
        ax.imshow(image, interpolation="nearest")
        true_name = textwrap.shorten(class_names[t], 28, placeholder="…")
        pred_name = textwrap.shorten(class_names[p], 28, placeholder="…")
        ax.set_title(f"true: {true_name}\npred: {pred_name}\np={conf:.2f}", fontsize=7)
    if not images:
        axes[0, 0].text(0, 0.5, "No misclassified test images.", fontsize=12)
    fig.suptitle("Worst misclassified test images (most confident mistakes first)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / (rows * 3.1)))  # leave the suptitle its own strip
    fig.savefig(path)
    plt.close(fig)
    return path
