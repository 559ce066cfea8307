"""The optimiser: a Gluon Trainer over all devices, and its state saved without pickle.

`update_on_kvstore=False` always: the kvstore only sums gradients across devices and each
device applies the update itself. That is what AMP's overflow check needs (else the kvstore
updates before the check, see mixed_precision.py), and what lets SGD use MXNet's aggregated
multi-tensor update (`multi_sgd_mom_update`, MXNET_OPTIMIZER_AGGREGATION_SIZE tensors per call
instead of one call per parameter).

Optimiser state (momentum and the like) is saved as an NDArray file plus JSON: Trainer.save_states
pickles, and unpickling a file from the checkpoint folder (or its S3 prefix) would run any code
written into it. mx.nd.load and json.loads cannot execute code.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import mxnet as mx
from mxnet import gluon

from gtsrb.common.failure import StepError
from gtsrb.train import mixed_precision
from gtsrb.train.hyperparameters import Hyperparameters

# Parameters per aggregated update call; MXNet's multi-tensor SGD kernels take at most 60.
AGGREGATION_SIZE = 60


def make_trainer(net: gluon.HybridBlock, hp: Hyperparameters, ctx: list[mx.Context], amp: bool,
                 kvstore: str | mx.kvstore.KVStore | None = None) -> gluon.Trainer:
    """The optimiser; `kvstore` sums the gradients (gtsrb.train.distributed.kvstore_type: by default
    `device` when there are several devices, the dist kvstore of a multi-host job)."""
    os.environ.setdefault("MXNET_OPTIMIZER_AGGREGATION_SIZE", str(AGGREGATION_SIZE))  # read by SGD's constructor
    params: dict[str, object] = {"learning_rate": hp.lr, "wd": hp.wd}
    if hp.optimizer in ("nag", "sgd"):
        params["momentum"] = hp.momentum
    if kvstore is None:
        kvstore = "device" if len(ctx) > 1 else "local"
    trainer = gluon.Trainer(net.collect_params(), hp.optimizer, params, kvstore=kvstore, update_on_kvstore=False)
    if amp:
        mixed_precision.attach(trainer)  # dynamic loss scaling, overflow checked on every device
    return trainer


def save_states(trainer: gluon.Trainer, arrays_file: Path, json_file: Path) -> None:
    """Write the optimiser state of the first device (all devices hold the same) and the loss scale."""
    updater = trainer._updaters[0]
    arrays: dict[str, mx.nd.NDArray] = {}
    layout = {str(index): _flatten(state, f"{index}", arrays) for index, state in updater.states.items()}
    optimizer = trainer._optimizer
    counts = {str(dev): {str(k): v for k, v in c.items()} for dev, c in optimizer._all_index_update_counts.items()}
    scaler = mixed_precision.scaler_of(trainer)
    mx.nd.save(str(arrays_file), arrays)
    json_file.write_text(json.dumps({"layout": layout, "num_update": optimizer.num_update, "update_counts": counts,
                                     "loss_scaler": scaler.state() if scaler else None}))


def read_states(arrays_file: Path, json_file: Path) -> dict:
    """Read and check what save_states wrote, touching no trainer; a damaged file raises StepError."""
    try:
        meta = json.loads(json_file.read_text())
        arrays = mx.nd.load(str(arrays_file)) if meta["layout"] else {}
        if not isinstance(arrays, dict):
            raise ValueError("the arrays have no names")
        missing = [key for key in _keys(list(meta["layout"].values())) if key not in arrays]
        if missing:
            raise ValueError(f"array {missing[0]} is missing")
        int(meta["num_update"]), dict(meta["update_counts"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, mx.base.MXNetError) as err:
        raise StepError(f"the optimiser state in {arrays_file.parent} cannot be read ({first_line(err)})") from err
    return {**meta, "arrays": arrays}


def apply_states(trainer: gluon.Trainer, saved: dict) -> None:
    """Put a read_states() result onto every device of the trainer, with the loss scale."""
    for updater, context in zip(trainer._updaters, trainer._contexts, strict=True):
        updater.states = {int(k): _unflatten(spec, saved["arrays"], context) for k, spec in saved["layout"].items()}
        updater.states_synced = dict.fromkeys(updater.states, True)
    _load_counts(trainer._optimizer, saved)
    scaler = mixed_precision.scaler_of(trainer)
    if scaler and saved.get("loss_scaler"):
        scaler.load(saved["loss_scaler"])


def _keys(layout: object) -> list[str]:
    """Every array name a layout refers to."""
    if isinstance(layout, str):
        return [layout]
    if isinstance(layout, list):
        return [key for part in layout for key in _keys(part)]
    return []


def _load_counts(optimizer: mx.optimizer.Optimizer, meta: dict) -> None:
    """Per-parameter update counts (Adam's bias correction reads them) and the global count."""
    optimizer.num_update = int(meta["num_update"])
    optimizer._all_index_update_counts = {int(d): {int(k): int(v) for k, v in c.items()} for d, c in meta["update_counts"].items()}
    optimizer._index_update_count = optimizer._all_index_update_counts.setdefault(0, {})


def _flatten(state: object, key: str, arrays: dict[str, mx.nd.NDArray]) -> object:
    """Store the NDArrays of one parameter's state in `arrays`; return its JSON layout."""
    if state is None:
        return None
    if isinstance(state, mx.nd.NDArray):
        arrays[key] = state.as_in_context(mx.cpu())
        return key
    if isinstance(state, (tuple, list)):
        return [_flatten(part, f"{key}.{i}", arrays) for i, part in enumerate(state)]
    raise StepError(f"optimiser state of type {type(state).__name__} cannot be saved without pickle.")


def _unflatten(spec: object, arrays: dict[str, mx.nd.NDArray], context: mx.Context) -> object:
    """Rebuild one parameter's state from its layout, on `context`."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return arrays[spec].as_in_context(context).copy()
    if isinstance(spec, list):
        return tuple(_unflatten(part, arrays, context) for part in spec)
    raise ValueError(f"unexpected layout entry {spec!r}")


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (MXNet appends C++ stack traces)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# Learning rate as a pure function of the global step: linear warmup, then cosine to zero. Being a
# function of the step (not a stateful scheduler) is what makes resuming exact: a run restarted at
# step s uses the rate it would have used anyway.
def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """The rate for update number `step` (0-based) of `total_steps`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
