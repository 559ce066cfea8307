"""From a batch of network inputs to class probabilities: the one forward pass evaluate, the train
step's validation and the model server all call, so they cannot drift apart. It applies the
model's test-time augmentation (preprocessing.json `tta`): views are shifts of the already
normalised input (edge-padded, then cropped), never mirrors.
"""

from __future__ import annotations

import mxnet as mx
import numpy as np

from gtsrb.common.preprocessing import TTA_MODES, TTA_VIEWS


def shifted(data: mx.nd.NDArray, dy: int, dx: int) -> mx.nd.NDArray:
    """`data` (NCHW) moved by (dy, dx) pixels, the border repeated into the freed rows/columns."""
    if dy == 0 and dx == 0:
        return data
    pad = max(abs(dy), abs(dx))
    padded = mx.nd.pad(data, mode="edge", pad_width=(0, 0, 0, 0, pad, pad, pad, pad))
    height, width = data.shape[2], data.shape[3]
    top, left = pad - dy, pad - dx
    return padded[:, :, top : top + height, left : left + width]


def class_probabilities(net: mx.gluon.HybridBlock, data: mx.nd.NDArray, tta: str = "none") -> np.ndarray:
    """Softmax probabilities (N, classes) float32 of a normalised NCHW batch on the net's context,
    averaged over the views of the test-time augmentation `tta`."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta={tta!r} is unknown; use one of {', '.join(TTA_MODES)}")
    views = TTA_VIEWS[tta]
    total = None
    for dy, dx in views:
        probs = mx.nd.softmax(net(shifted(data, dy, dx)).astype("float32"))
        total = probs if total is None else total + probs
    return (total / len(views)).asnumpy()
