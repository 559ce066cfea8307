"""An exponential moving average (EMA) of the weights: a free ensemble of the last updates.

After every update `average = d * average + (1 - d) * weights` for every parameter, BatchNorm's
running statistics included, with the decay `d = min(ema_decay, (1 + step) / (10 + step))` so the
first updates are not dominated by the random initialisation. The model exported is the average
(it costs nothing at inference: same network, other numbers); the raw weights keep training.
Validation scores the average too, so what is logged is what is exported.

The average is saved beside every checkpoint (`ema.params`) and restored with it, so a resumed
run continues the same average. The decay is a function of the global step only: exact resume.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import mxnet as mx
from mxnet import gluon

from gtsrb.common.failure import StepError

EMA_FILE = "ema.params"


def decay_at(step: int, ema_decay: float) -> float:
    """The decay of update number `step` (0-based): a warm-up to `ema_decay`."""
    return min(ema_decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The running average of every parameter of `net`, on the first device."""

    def __init__(self, net: gluon.HybridBlock, ema_decay: float) -> None:
        self.decay = ema_decay
        self.params = net._collect_params_with_prefix()
        self.average = {name: p.data().copy() for name, p in self.params.items()}

    def update(self, step: int) -> None:
        """Fold the current weights into the average (queued on MXNet's engine, no wait)."""
        d = decay_at(step, self.decay)
        for name, param in self.params.items():
            avg = self.average[name]
            avg[:] = d * avg + (1.0 - d) * param.data(avg.context)

    @contextmanager
    def swapped_in(self):
        """Inside the block the network holds the average; the raw weights come back after it."""
        raw = {name: p.data().copy() for name, p in self.params.items()}
        self._set(self.average)
        try:
            yield
        finally:
            self._set(raw)

    def _set(self, values: dict[str, mx.nd.NDArray]) -> None:
        for name, param in self.params.items():
            param.set_data(values[name])

    def save(self, path: Path) -> None:
        """Write the average as an NDArray file with the network's parameter names."""
        mx.nd.save(str(path), self.average)

    def load(self, path: Path) -> None:
        """Read what save() wrote; StepError naming the file if it does not fit the network."""
        try:
            loaded = mx.nd.load(str(path))
        except mx.base.MXNetError as err:
            raise StepError(f"{path} cannot be loaded ({str(err).splitlines()[0]})") from err
        if not isinstance(loaded, dict) or {k: v.shape for k, v in loaded.items()} != {k: v.shape for k, v in self.average.items()}:
            raise StepError(f"{path} does not hold this network's weight average")
        for name, value in loaded.items():
            self.average[name][:] = value.as_in_context(self.average[name].context)
