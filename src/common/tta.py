"""Test-time augmentation: one function that evaluate, validation and serving call to score a batch.

A model's TTA mode is part of its input contract (preprocessing.json `tta`), so every consumer
scores exactly as the model was evaluated. Views are shifts of the already normalised input
tensor (edge-padded, then cropped), never mirrors: mirrored signs are other classes.
"""

from __future__ import annotations

import mxnet as mx

# mode -> (dy, dx) pixel shifts of the views whose softmax outputs are averaged.
TTA_VIEWS: dict[str, tuple[tuple[int, int], ...]] = {
    "none": ((0, 0),),
    "shift": ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)),  # the centre and four 2 px shifts
}
TTA_MODES: tuple[str, ...] = tuple(TTA_VIEWS)


def shifted(data: mx.nd.NDArray, dy: int, dx: int) -> mx.nd.NDArray:
    """`data` (NCHW) moved by (dy, dx) pixels, the border repeated into the freed rows/columns."""
    if dy == 0 and dx == 0:
        return data
    pad = max(abs(dy), abs(dx))
    padded = mx.nd.pad(data, mode="edge", pad_width=(0, 0, 0, 0, pad, pad, pad, pad))
    height, width = data.shape[2], data.shape[3]
    top, left = pad - dy, pad - dx
    return padded[:, :, top:top + height, left:left + width]


def probabilities(net: mx.gluon.Block, data: mx.nd.NDArray, mode: str = "none") -> mx.nd.NDArray:
    """Softmax class probabilities of a normalised NCHW batch, averaged over the mode's views."""
    if mode not in TTA_VIEWS:
        raise ValueError(f"tta={mode!r} is unknown; use one of {', '.join(TTA_MODES)}")
    views = TTA_VIEWS[mode]
    total = None
    for dy, dx in views:
        probs = mx.nd.softmax(net(shifted(data, dy, dx)).astype("float32"))
        total = probs if total is None else total + probs
    return total / len(views)
