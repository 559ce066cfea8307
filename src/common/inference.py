"""From a batch of network inputs to class probabilities: the one forward pass evaluate, the train
step's validation and the model server all call, so they cannot drift apart (test-time
augmentation, if any, belongs here).
"""

from __future__ import annotations

import mxnet as mx
import numpy as np


def class_probabilities(net: mx.gluon.HybridBlock, data: mx.nd.NDArray) -> np.ndarray:
    """Softmax probabilities (N, classes) float32 of a normalised NCHW batch already on the net's context."""
    return mx.nd.softmax(net(data).astype("float32")).asnumpy()
