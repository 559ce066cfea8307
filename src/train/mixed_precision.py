"""Mixed precision (MXNet AMP) for training: float16 on GPUs, bfloat16 on CPU contexts.

MXNet's dynamic loss scaling skips an update whose gradients overflowed and halves the scale.
With several devices it is safe as long as the Trainer applies the update itself:
- `Trainer.step` first sums the gradients across devices (kvstore pushpull, the sum written back
  to every device), then checks for overflow. A non-finite gradient on any device makes the sum
  non-finite on all of them, so MXNet's LossScaler, which reads the first device's gradients
  (one `multi_all_finite` per 200 arrays, one host read per step), sees every device's overflow;
- with the default `update_on_kvstore` the kvstore applies the update inside the pushpull, before
  the check (one non-finite step made 58 of 61 parameters NaN): the Trainer must be made with
  `update_on_kvstore=False` (see optimizer.make_trainer).
Our scaler is MXNet's check unchanged; it exists to save and restore its state (scale, steps since
the last overflow) in checkpoints.
"""

from __future__ import annotations

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp
from mxnet.contrib.amp.loss_scaler import LossScaler


def target_dtype(ctx: list[mx.Context]) -> str:
    """The low-precision type AMP uses on these devices (float16 needs a GPU)."""
    return "float16" if ctx[0].device_type == "gpu" else "bfloat16"


def init(ctx: list[mx.Context]) -> str:
    """Patch MXNet's operators for AMP (before the network is built); return the dtype."""
    dtype = target_dtype(ctx)
    amp.init(target_dtype=dtype)
    return dtype


class CheckpointedLossScaler(LossScaler):
    """MXNet's dynamic loss scaler (overflow read from the summed gradients), with a checkpointable state."""

    def state(self) -> dict[str, float]:
        """What a checkpoint keeps of the scaler."""
        return {"loss_scale": self._loss_scale, "next_loss_scale": self._next_loss_scale, "unskipped": self._unskipped}

    def load(self, values: dict[str, float]) -> None:
        """Continue from a checkpoint's scaler state."""
        self._loss_scale = float(values["loss_scale"])
        self._next_loss_scale = float(values["next_loss_scale"])
        self._unskipped = int(values["unskipped"])


def attach(trainer: gluon.Trainer) -> CheckpointedLossScaler:
    """Give the Trainer dynamic loss scaling; return the scaler."""
    amp.init_trainer(trainer)
    scaler = CheckpointedLossScaler()
    trainer._amp_loss_scaler = scaler  # the attribute amp.scale_loss and Trainer._update read
    return scaler


def scaler_of(trainer: gluon.Trainer) -> CheckpointedLossScaler | None:
    """The Trainer's loss scaler, if it trains with AMP."""
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    return scaler if isinstance(scaler, CheckpointedLossScaler) else None
