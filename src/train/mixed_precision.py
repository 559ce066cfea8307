"""Mixed precision (MXNet AMP) for training: float16 on GPUs, bfloat16 on CPU contexts.

MXNet's dynamic loss scaling skips an update whose gradients overflowed and halves the scale.
Two details of MXNet 1.9.1 make that unsafe with several devices, which this module fixes:
- its LossScaler checks only the first device's gradients; ours checks every device's
  (one `multi_all_finite` per device, one host read per step: the skip decision must be known
  on the host before the update is issued, and 1.9.1 has no conditional multi-tensor update);
- with the default `update_on_kvstore` the kvstore applies the update before the Trainer checks
  for overflow (one non-finite step made 58 of 61 parameters NaN): the Trainer must be made
  with `update_on_kvstore=False` (see optimizer.make_trainer).
The scaler's state (scale, steps since the last overflow) is saved in checkpoints.
"""

from __future__ import annotations

import mxnet as mx
from mxnet import autograd, gluon
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


class AllDevicesLossScaler(LossScaler):
    """MXNet's dynamic loss scaler, checking the gradients of every device for overflow."""

    def has_overflow(self, params: list[gluon.Parameter]) -> bool:
        """True (and the scale halves from the next step) if any gradient on any device is not finite."""
        with autograd.pause():
            flags = [_all_finite(grads) for grads in _grads_by_device(params)]
            finite = flags[0] if len(flags) == 1 else mx.nd.add_n(*[f.as_in_context(flags[0].context) for f in flags])
            overflow = int(finite.asscalar()) != len(flags)  # the one host sync of the step
        self._loss_scale = self._next_loss_scale
        if overflow:
            self._next_loss_scale, self._unskipped = self._loss_scale / 2.0, 0
            return True
        self._unskipped += 1
        if self._unskipped == self._scale_seq_len:
            self._unskipped = 0
            self._next_loss_scale = min(self._max_loss_scale, self._loss_scale * 2.0)
        return False

    def state(self) -> dict[str, float]:
        """What a checkpoint keeps of the scaler."""
        return {"loss_scale": self._loss_scale, "next_loss_scale": self._next_loss_scale, "unskipped": self._unskipped}

    def load(self, values: dict[str, float]) -> None:
        """Continue from a checkpoint's scaler state."""
        self._loss_scale = float(values["loss_scale"])
        self._next_loss_scale = float(values["next_loss_scale"])
        self._unskipped = int(values["unskipped"])


def _grads_by_device(params: list[gluon.Parameter]) -> list[list[mx.nd.NDArray]]:
    """The gradients of `params`, one list per device."""
    with_grad = [p.list_grad() for p in params if p.grad_req != "null"]
    return [list(grads) for grads in zip(*with_grad, strict=True)]


def _all_finite(grads: list[mx.nd.NDArray], chunk: int = 200) -> mx.nd.NDArray:
    """A (1,) array on the grads' device: 1 if every element of every array is finite, else 0."""
    flag = mx.nd.ones((1,), ctx=grads[0].context)
    for i in range(0, len(grads), chunk):
        part = grads[i:i + chunk]
        mx.nd.multi_all_finite(*part, num_arrays=len(part), init_output=False, out=flag)
    return flag


def attach(trainer: gluon.Trainer) -> AllDevicesLossScaler:
    """Give the Trainer dynamic loss scaling that checks every device; return the scaler."""
    amp.init_trainer(trainer)
    scaler = AllDevicesLossScaler()
    trainer._amp_loss_scaler = scaler  # the attribute amp.scale_loss and Trainer._update read
    return scaler


def scaler_of(trainer: gluon.Trainer) -> AllDevicesLossScaler | None:
    """The Trainer's loss scaler, if it trains with AMP."""
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    return scaler if isinstance(scaler, AllDevicesLossScaler) else None
