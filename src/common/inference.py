"""From a batch of network inputs to class probabilities: the one forward pass evaluate, the train
step's validation and the model server all call, so they cannot drift apart. It applies the
model's test-time augmentation (preprocessing.json `tta`): views are shifts (edge-padded, then
cropped) and rotations (about the centre, bilinear, the corners filled with 0, the data set's mean
colour) of the already normalised input, never mirrors.
"""

from __future__ import annotations

import math

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


def rotated(data: mx.nd.NDArray, degrees: float) -> mx.nd.NDArray:
    """`data` (NCHW) rotated by `degrees` about its centre (bilinear; 0 where no pixel maps)."""
    if degrees == 0:
        return data
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    affine = mx.nd.array([[c, -s, 0.0, s, c, 0.0]], ctx=data.context).broadcast_to((data.shape[0], 6))
    grid = mx.nd.GridGenerator(affine, transform_type="affine", target_shape=data.shape[2:])
    return mx.nd.BilinearSampler(data, grid.astype(data.dtype))


def class_probabilities(net: mx.gluon.HybridBlock, data: mx.nd.NDArray, tta: str = "none") -> np.ndarray:
    """Softmax probabilities (N, classes) float32 of a normalised NCHW batch on the net's context,
    averaged over the views of the test-time augmentation `tta`."""
    if tta not in TTA_VIEWS:
        raise ValueError(f"tta={tta!r} is unknown; use one of {', '.join(TTA_MODES)}")
    views = TTA_VIEWS[tta]
    total = None
    for dy, dx, degrees in views:
        probs = mx.nd.softmax(net(rotated(shifted(data, dy, dx), degrees)).astype("float32"))
        total = probs if total is None else total + probs
    return (total / len(views)).asnumpy()
