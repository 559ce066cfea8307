"""A loaded model that turns image files into top-k predictions (the server and `make predict`).

The forward pass is gtsrb.common.inference's (the one evaluate uses) and the input transform is
gtsrb.common.image_input.to_input (evaluate's centre crop and normalisation), so an image packed by
prepare gets the same class here as in the evaluation report.

Images are decoded and predicted MAX_BATCH at a time, so a request's memory does not grow with its
record count, and a deadline is checked between those slices. `python -m gtsrb.serve.predictor
MODEL [--unpack-to DIR]` is the server's check before its workers start (see `main`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mxnet as mx
import numpy as np

from gtsrb.common import cuda
from gtsrb.common.failure import StepError, first_line
from gtsrb.common.image_input import decode_checked, to_input
from gtsrb.common.inference import class_probabilities
from gtsrb.common.model_io import LoadedModel, load_model
from gtsrb.serve import protocol

MAX_BATCH = 64  # images per forward pass: a request is decoded and predicted in slices of this size
EXIT_BAD_MODEL = 2


class ImageError(ValueError):
    """An input that is not a usable image; the message is one sentence for the client."""


class DeadlineError(RuntimeError):
    """The request ran past its time limit; the message says how far it got."""


@dataclass
class Predictor:
    """One loaded model on one context (one per server worker)."""

    model: LoadedModel
    ctx: mx.Context
    # Where a model.tar.gz was extracted: removed when the predictor goes (TemporaryDirectory's finalizer).
    scratch: tempfile.TemporaryDirectory | None = None
    # One forward pass at a time: a worker's request threads share the model (MXNet's cached graph
    # is not safe to run from two threads at once), and one slice in memory at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, source: str | Path, ctx: mx.Context | None = None, unpack_to: Path | None = None) -> Predictor:
        """Load a model directory or model.tar.gz (extracted into `unpack_to`, else a temp folder kept
        for the process), check it and run one warm-up prediction; StepError when it is unusable."""
        ctx = ctx or (mx.gpu(0) if cuda.gpu_count() > 0 else mx.cpu())
        source = Path(source)
        scratch = tempfile.TemporaryDirectory(prefix="gtsrb-serve-") if source.is_file() and not unpack_to else None
        predictor = cls(load_model(source, ctx, Path(scratch.name) / "model" if scratch else unpack_to), ctx, scratch)
        predictor.check()
        return predictor

    def check(self) -> None:
        """One warm-up prediction; the network's output must have one finite score per class name."""
        where = self.model.source
        if not self.class_names:
            raise StepError(f"{where}: classes.json lists no classes; re-run the train step.")
        size = self.model.preprocessing.image_size
        try:
            probs = self.probabilities([np.zeros((3, size, size), np.float32)])
        except mx.base.MXNetError as err:
            reason = first_line(err)
            raise StepError(f"{where}: the network cannot predict a {size}x{size} image ({reason}); re-run the train step.") from None
        if probs.shape != (1, len(self.class_names)):
            raise StepError(f"{where}: the network outputs {probs.shape[-1]} class scores but classes.json lists "
                            f"{len(self.class_names)} classes; the model files do not belong together.")
        if not np.isfinite(probs).all():
            raise StepError(f"{where}: the warm-up prediction is not finite (NaN weights?); re-run the train step.")

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

    def predict(self, images: Sequence[bytes] | Callable[[int], bytes], count: int | None = None,
                top_k: int = protocol.DEFAULT_TOP_K, deadline: float | None = None) -> list[dict]:
        """One prediction document per image file, in order; ImageError names the first bad one.

        `images` is a list of files' bytes, or a function giving the i-th of `count` (decoded only
        when its slice comes). DeadlineError when time.monotonic() passes `deadline` between slices.
        """
        total = len(images) if count is None else count
        get = images if callable(images) else images.__getitem__
        documents: list[dict] = []
        for start in range(0, total, MAX_BATCH):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineError(f"answered {start} of {total} records")
            with self.lock:
                inputs = []
                for number in range(start, min(start + MAX_BATCH, total)):
                    try:
                        inputs.append(self.image_input(get(number)))
                    except ImageError as err:
                        where = f" (record {number} of {total})" if total > 1 else ""
                        raise ImageError(f"the body is not a usable image{where}: {err}") from None
                probs = self.probabilities(inputs)
            documents += [protocol.prediction_document(p, self.class_names, top_k) for p in probs]
        return documents


def main(argv: list[str] | None = None) -> int:
    """The server's model check, in its own process before the workers start (MXNet stays out of
    gunicorn's master): unpack a model.tar.gz once into --unpack-to, load, check, warm up.
    Exit 0, or 2 with one `ERROR:` line."""
    parser = argparse.ArgumentParser(prog="python -m gtsrb.serve.predictor", description="check a model before serving it")
    parser.add_argument("model", type=Path)
    parser.add_argument("--unpack-to", type=Path, help="extract a model.tar.gz here (the folder the workers load)")
    args = parser.parse_args(argv)
    try:
        Predictor.load(args.model, mx.cpu(), args.unpack_to)
    except StepError as err:
        print(f"ERROR: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_MODEL
    return 0


if __name__ == "__main__":
    sys.exit(main())
