"""The pictures of the report: the confusion matrix (counts, and row-normalised) and the worst
misclassified test images (drawn from predictions.csv)."""

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
from gtsrb.evaluate.predictions import Prediction

GRID_SIZE = 25  # misclassified images shown (5 x 5)
NAME_CHARS = 30  # class names are cut to this on the axes
# An image whose 99th-percentile luminance is below this (of 255) is shown contrast-stretched:
# GTSRB's darkest signs are black squares at their true brightness.
DARK_P99 = 128


def _short(index: int, name: str) -> str:
    """Axis label `12 Priority road`, cut so 43 of them fit."""
    label = f"{index} {name}"
    return label if len(label) <= NAME_CHARS else label[: NAME_CHARS - 1] + "…"


def plot_confusion(cm: np.ndarray, class_names: list[str], path: Path, row_normalised: bool = False) -> Path:
    """Counts on a log colour scale (the diagonal dwarfs the errors), every non-zero cell written;
    `row_normalised`: each true class's row as shares of its test images (recall on the diagonal,
    in %), so a rare class's errors stand out as much as a common one's."""
    k = len(class_names)
    side = max(6.0, 0.32 * k + 3)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    if row_normalised:
        shares = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
        image = ax.imshow(np.ma.masked_equal(shares, 0), cmap="viridis", vmin=0, vmax=1)
        for i, j in zip(*np.nonzero(cm), strict=True):
            colour = "black" if shares[i, j] > 0.5 else "white"
            ax.text(j, i, f"{100 * shares[i, j]:.0f}", ha="center", va="center", fontsize=5, color=colour)
    else:
        image = ax.imshow(np.ma.masked_equal(cm, 0), cmap="viridis", norm=LogNorm(vmin=1, vmax=max(1, int(cm.max()))))
        for i, j in zip(*np.nonzero(cm), strict=True):
            colour = "black" if cm[i, j] > np.sqrt(max(1, cm.max())) else "white"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6, color=colour)
    labels = [_short(i, n) for i, n in enumerate(class_names)]
    ax.set_xticks(range(k), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(1, cm.sum())
    kind = "row-normalised (% of each true class)" if row_normalised else "counts"
    ax.set_title(f"Confusion matrix, {kind}: {int(cm.sum())} test images, accuracy {accuracy:.4f}")
    if row_normalised:
        fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class's images")
    else:
        bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="images (log scale)")
        plain = FuncFormatter(lambda value, _: f"{value:g}")  # 6, not 6×10⁰
        bar.ax.yaxis.set_major_formatter(plain)
        bar.ax.yaxis.set_minor_formatter(plain)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def read_images(files: RecordFiles, rows: list[Prediction]) -> list[np.ndarray]:
    """RGB images of these rows' records (position = file order, the order predict() returns).

    The label stored with each image is checked against the row's true class, so a
    mismatch between the picture and its caption cannot go unnoticed.
    """
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    try:
        keys = sorted(reader.keys, key=lambda key: reader.idx[key])  # file order = offset order
        images = []
        for row in rows:
            if not 0 <= row.record < len(keys):
                raise StepError(f"{files.rec} has {len(keys)} records; the predictions name record {row.record}.")
            header, bgr = mx.recordio.unpack_img(reader.read_idx(keys[row.record]))
            stored = int(np.ravel(header.label)[0])
            if stored != row.true_class:
                raise StepError(f"{files.rec}: record {row.record} has label {stored}, predictions say {row.true_class}.")
            images.append(bgr[:, :, ::-1])
        return images
    finally:
        reader.close()


def stretched(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """The image for display: a dark one (99th-percentile luminance < DARK_P99) linearly stretched
    so its 1st..99th percentiles span 0..255; says whether it was stretched."""
    luminance = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    low, high = np.percentile(luminance, [1, 99])
    if high >= DARK_P99 or high - low < 1:
        return image, False
    out = (image.astype(np.float32) - low) * (255.0 / (high - low))
    return np.clip(out, 0, 255).astype(np.uint8), True


def plot_misclassified(images: list[np.ndarray], rows: list[Prediction], class_names: list[str], path: Path) -> Path:
    """A grid of images, each titled with its file, true and predicted class (id and name) and
    the probabilities of both; dark images are shown contrast-stretched and say so."""
    cols = 5
    n_rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(n_rows, cols, figsize=(cols * 2.8, n_rows * 3.5), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, row in zip(axes.flat, images, rows, strict=False):
        shown, was_stretched = stretched(image)
        ax.imshow(shown, interpolation="nearest")
        true_name = textwrap.shorten(class_names[row.true_class], 24, placeholder="…")
        pred_name = textwrap.shorten(class_names[row.predicted_class], 24, placeholder="…")
        name = Path(row.file).name if row.file else f"record {row.record}"
        ax.set_title(
            f"{name}{' (stretched)' if was_stretched else ''}\n"
            f"true {row.true_class}: {true_name} p={row.true_class_probability:.2f}\n"
            f"pred {row.predicted_class}: {pred_name} p={row.probability:.2f}",
            fontsize=6.5,
        )
    if not images:
        axes[0, 0].text(0, 0.5, "No misclassified test images.", fontsize=12)
    fig.suptitle("Worst misclassified test images (most confident mistakes first; dark ones shown stretched)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / (n_rows * 3.5)))  # leave the suptitle its own strip
    fig.savefig(path)
    plt.close(fig)
    return path
