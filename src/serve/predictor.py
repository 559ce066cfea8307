"""A loaded model that turns image files into top-k predictions (the server and `make predict`).

The forward pass is gtsrb.common.inference's (the one evaluate uses) and the input transform is
gtsrb.common.image_input.to_input (evaluate's centre crop and normalisation), so an image packed by
prepare gets the same class here as in the evaluation report.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from gtsrb.common.image_input import decode_checked, to_input
from gtsrb.common.inference import class_probabilities
from gtsrb.common.model_io import LoadedModel, load_model
from gtsrb.serve import protocol

MAX_BATCH = 64  # images per forward pass; a RecordIO request is cut into batches of this size


class ImageError(ValueError):
    """An input that is not a usable image; the message is one sentence for the client."""


@dataclass
class Predictor:
    """One loaded model on one context (one per server worker)."""

    model: LoadedModel
    ctx: mx.Context
    # Where a model.tar.gz was extracted: removed when the predictor goes (TemporaryDirectory's finalizer).
    scratch: tempfile.TemporaryDirectory | None = None

    @classmethod
    def load(cls, source: str | Path, ctx: mx.Context | None = None) -> Predictor:
        """Load a model directory or model.tar.gz (extracted to a temp folder kept for the process)."""
        ctx = ctx or (mx.gpu(0) if mx.context.num_gpus() > 0 else mx.cpu())
        scratch = tempfile.TemporaryDirectory(prefix="gtsrb-serve-")
        return cls(load_model(source, ctx, Path(scratch.name) / "model"), ctx, scratch)

    @property
    def class_names(self) -> list[str]:
        """The model's class names, indexed by class id."""
        return self.model.class_names

    def image_input(self, raw: bytes) -> np.ndarray:
        """An image file's bytes as one network input; ImageError when they are not a usable image."""
        image, reason = decode_checked(raw)
        if image is None:
            raise ImageError(reason)
        return to_input(image, self.model.preprocessing)

    def probabilities(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, classes) of network inputs, MAX_BATCH at a time."""
        out = []
        for start in range(0, len(inputs), MAX_BATCH):
            batch = mx.nd.array(np.stack(inputs[start : start + MAX_BATCH]), ctx=self.ctx)
            out.append(class_probabilities(self.model.net, batch, self.model.preprocessing.tta))
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)), np.float32)

    def predict(self, images: list[bytes], top_k: int = protocol.DEFAULT_TOP_K) -> list[dict]:
        """One prediction document per image file, in order; ImageError names the first bad one."""
        inputs = []
        for number, raw in enumerate(images):
            try:
                inputs.append(self.image_input(raw))
            except ImageError as err:
                where = f" (record {number} of {len(images)})" if len(images) > 1 else ""
                raise ImageError(f"the body is not a usable image{where}: {err}") from None
        probs = self.probabilities(inputs)
        return [protocol.prediction_document(p, self.class_names, top_k) for p in probs]
