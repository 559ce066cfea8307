"""The training loop: epochs of augmented batches, validation, early stopping, checkpoints.

Reads top to bottom: `fit` runs epochs; `train_epoch` runs batches; `train_batch` is the
Gluon idiom (split over devices, record, backward, step). The rate is set per batch from the
global step, every RNG (augmentation included) is seeded from (seed, epoch), and a checkpoint is
written after every epoch and on SIGTERM or SIGINT, so a resumed run continues where the last one
stopped. Several devices run data parallel (several GPUs, or CPU contexts in tests).
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from gtsrb.common import contract
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.common.records import predict
from gtsrb.train import checkpoint
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.data import train_iter
from gtsrb.train.distributed import EARLY_STOP_KEY, EPOCH_KEY, Workers
from gtsrb.train.ema import WeightAverage
from gtsrb.train.epoch_log import epoch_line
from gtsrb.train.hyperparameters import Hyperparameters, epoch_seed
from gtsrb.train.model import has_input_batchnorm
from gtsrb.train.optimizer import learning_rate

log = logging.getLogger(__name__)

IN_FLIGHT = 3  # batches queued ahead of the device: enough to overlap input and compute


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # job stop / spot interruption, and Ctrl-C in a terminal


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; a checkpoint has been written."""


class StopFlag:
    """Set by SIGTERM or SIGINT; the loop checks it after every batch."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""  # the signal's name, e.g. SIGTERM

    def install(self) -> dict[int, object]:
        """Handle the stop signals by setting the flag instead of dying mid-write; return the old handlers.
        Then unblock them: a multi-host worker starts with SIGTERM blocked (gtsrb.train.launcher),
        so one sent before this point is delivered now, to the handler."""
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
        return previous

    @staticmethod
    def uninstall(previous: dict[int, object]) -> None:
        """Put back the handlers install() replaced."""
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.reason = signal.Signals(signum).name
        log.info("event=%s action=checkpoint_after_this_batch", self.reason.lower())
        self.requested = True


@dataclass
class Run:
    """Everything one training run works with."""

    net: gluon.HybridBlock
    trainer: gluon.Trainer
    ctx: list[mx.Context]
    train_files: contract.RecordFiles
    val_files: contract.RecordFiles
    prep: Preprocessing
    hp: Hyperparameters
    train_count: int
    checkpoint_dir: Path
    class_names: list[str]  # from the training data (classes.json beside the split)
    amp: bool = False
    workers: Workers = field(default_factory=Workers.single)  # one host: no kvstore between workers
    data_key: str = ""  # checkpoint.data_key of the training data ("" = of train_files and val_files)
    stop_agreed: bool = False  # several hosts: every worker's stop request as agreed at the last epoch end
    stop: StopFlag = field(default_factory=StopFlag)
    ema: WeightAverage | None = None  # the weight average validated and exported (hp.ema_decay > 0)

    @property
    def input_needs_grad(self) -> bool:
        """MXNet's CPU BatchNorm updates its running mean/var in the backward pass; a BatchNorm on
        the raw input (pre-activation ResNets: resnet*_v2, cifar_resnet*_v2) gets no backward unless
        the input asks for a gradient, and would predict with mean 0, var 1. Elsewhere the input
        gradient is a wasted convolution, so it is attached only here."""
        return self.ctx[0].device_type == "cpu" and has_input_batchnorm(self.hp.model)

    @property
    def steps_per_epoch(self) -> int:
        """Full global batches per epoch (the partial last batch is dropped; shuffling varies it);
        the same on every worker, which each read batch_size / workers of their own part."""
        return max(1, self.train_count // self.hp.batch_size)

    @property
    def stops_after_epoch(self) -> bool:
        """Stop now, between epochs? One host: whenever SIGTERM came; several: only as every
        worker agreed at the end of the epoch (a signal that came later stops them all one batch on)."""
        return self.stop_agreed if self.workers.kv is not None else self.stop.requested

    @property
    def worker_batch(self) -> int:
        """The images this worker reads per update (batch_size is the global batch)."""
        return self.hp.batch_size // self.workers.count


def seed_everything(seed: int, epoch: int) -> None:
    """Seed MXNet, NumPy and Python from (seed, epoch): a resumed epoch draws the same numbers."""
    value = epoch_seed(seed, epoch)
    mx.random.seed(value)
    np.random.seed(value)
    random.seed(value)


def smooth_labels(label: mx.nd.NDArray, smoothing: float, num_classes: int) -> mx.nd.NDArray:
    """One-hot targets with `smoothing` of the mass spread over all classes."""
    off = smoothing / num_classes
    return mx.nd.one_hot(label, num_classes, on_value=1.0 - smoothing + off, off_value=off)


def train_batch(run: Run, batch: mx.io.DataBatch, loss_fn: gluon.loss.Loss) -> tuple[list, list]:
    """One update over all devices; returns per-device (loss sum, correct count) NDArrays."""
    # ImageRecordIter batches live on cpu_pinned: split_and_load copies them to each device.
    data = gluon.utils.split_and_load(batch.data[0], run.ctx, even_split=False)
    labels = gluon.utils.split_and_load(batch.label[0], run.ctx, even_split=False)
    if run.input_needs_grad:
        for x in data:
            x.attach_grad()
    with autograd.record():
        outputs = [run.net(x) for x in data]
        losses = [loss_fn(o, smooth_labels(y, run.hp.label_smoothing, len(run.class_names))) for o, y in zip(outputs, labels, strict=True)]
        if run.amp:
            from mxnet.contrib import amp as mx_amp

            with mx_amp.scale_loss(losses, run.trainer) as scaled:
                autograd.backward(scaled)
    if not run.amp:
        autograd.backward(losses)
    run.trainer.step(batch.data[0].shape[0] * run.workers.count)  # the kvstore sums every worker's gradients
    correct = [(o.argmax(axis=1).astype("float32") == y.astype("float32")).sum() for o, y in zip(outputs, labels, strict=True)]
    return [loss.sum() for loss in losses], correct


def train_epoch(run: Run, state: TrainingState, epoch: int) -> dict[str, float]:
    """Train one epoch (from state.step_in_epoch on); returns the epoch's sums.

    Raises Interrupted after writing a mid-epoch checkpoint when SIGTERM arrived.
    """
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
    steps, start = run.steps_per_epoch, state.step_in_epoch
    sums = dict(state.partial) or {"loss": 0.0, "correct": 0.0, "images": 0, "seconds": 0.0}
    pending: list = []  # device-side results of the last batches, read a few batches later
    tick = time.time()
    for i, batch in enumerate(train_iter(run.train_files, run.prep, run.hp, run.worker_batch, epoch, run.workers.seed_offset)):
        if i >= steps:
            break
        if i < start:
            continue  # resumed mid-epoch: same shuffle, skip the batches already trained
        run.trainer.set_learning_rate(_rate(run, epoch * steps + i))
        pending.append(train_batch(run, batch, loss_fn))
        if run.ema is not None:
            run.ema.update(epoch * steps + i)
        _fold(sums, pending, keep=IN_FLIGHT)  # bound the engine's queue (and device memory)
        sums["images"] += batch.data[0].shape[0]
        if run.hp.log_interval and (i + 1) % run.hp.log_interval == 0 and run.workers.is_first:
            log.info("epoch=%d/%d batch=%d/%d batch_lr=%.5g", epoch + 1, run.hp.epochs, i + 1, steps, run.trainer.learning_rate)
        if run.workers.stop_agreed(run.stop.requested) and i + 1 < steps:  # every worker stops at this batch
            _add_pending(sums, pending, tick)
            _save_interrupted(run, state, epoch, i + 1, sums)
    _add_pending(sums, pending, tick)
    run.workers.end_epoch()
    return sums


def _rate(run: Run, step: int) -> float:
    """The backbone learning rate of global update `step`."""
    steps = run.steps_per_epoch
    return learning_rate(step, run.hp.epochs * steps, int(run.hp.warmup_epochs * steps), run.hp.lr)


def _fold(sums: dict, pending: list, keep: int) -> None:
    """Read the oldest per-batch results into the sums until `keep` remain (waits for those)."""
    while len(pending) > keep:
        losses, correct = pending.pop(0)
        sums["loss"] += sum(float(x.asscalar()) for x in losses)
        sums["correct"] += sum(float(x.asscalar()) for x in correct)


def _add_pending(sums: dict, pending: list, tick: float) -> None:
    """Fold every pending result; time until they are all done (only then is the work done)."""
    _fold(sums, pending, keep=0)
    sums["seconds"] += time.time() - tick


def _save_interrupted(run: Run, state: TrainingState, epoch: int, step: int, sums: dict) -> None:
    """Write a mid-epoch checkpoint after SIGTERM/SIGINT and stop the run."""
    state.epochs_done, state.step_in_epoch, state.partial = epoch, step, sums
    run.workers.leave()
    if not run.workers.is_first:  # same weights everywhere: the first host writes the checkpoint
        raise Interrupted(f"the first host's checkpoint of epoch {epoch + 1} batch {step}")
    path = checkpoint.save(run.checkpoint_dir, run.net, run.trainer, state, run.ema)
    log.info("event=interrupted epoch=%d batch=%d checkpoint=%s", epoch + 1, step, path)
    raise Interrupted(str(path))


def finish_epoch(run: Run, state: TrainingState, epoch: int, sums: dict, started: float) -> dict | None:
    """Validate, log the epoch line, update early stopping and write the checkpoint (the first
    worker; every worker agrees on the sums, the statistics and whether to go on)."""
    agreed = run.workers.all_sum(EPOCH_KEY, [sums["loss"], sums["correct"], sums["images"], float(run.stop.requested)])
    seconds = sums["seconds"]
    sums = {"loss": float(agreed[0]), "correct": float(agreed[1]), "images": int(agreed[2]), "seconds": seconds}
    run.stop_agreed = bool(agreed[3])  # a stop on any host during the last batch stops every host
    train_loss = sums["loss"] / max(1, sums["images"])
    if not math.isfinite(train_loss):
        raise StepError(
            f"the training loss became {train_loss} in epoch {epoch + 1}; lower lr (now {run.hp.lr}) "
            f"or check the data; the last good checkpoint is kept in {run.checkpoint_dir}."
        )
    sync_running_stats(run.net)  # validate with the statistics the checkpoint and the model get
    run.workers.average_running_stats(run.net, run.trainer)
    state.epochs_done, state.step_in_epoch, state.partial = epoch + 1, 0, {}
    if not run.workers.is_first:
        state.stopped_early = bool(run.workers.all_sum(EARLY_STOP_KEY, [0.0])[0])
        return None
    labels, probs = validate(run)
    values = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "train_acc": sums["correct"] / max(1, sums["images"]),
        "val_acc": float((probs.argmax(axis=1) == labels).mean()),
        "lr": float(run.trainer.learning_rate),
        "img_per_s": sums["images"] / max(1e-9, sums["seconds"]),
        "seconds": time.time() - started,
    }
    state.history.append(values)
    remaining = run.hp.epochs - (epoch + 1)
    eta = remaining * sum(row["seconds"] for row in state.history) / len(state.history)
    log.info("%s", epoch_line(values, run.hp.epochs, eta, run.hp.fit_on_validation))
    _update_early_stopping(run.hp, state, values["val_acc"])
    checkpoint.save(run.checkpoint_dir, run.net, run.trainer, state, run.ema)
    run.workers.all_sum(EARLY_STOP_KEY, [float(state.stopped_early)])  # tell the other workers
    return values


def validate(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of the validation split, scored with the weights that get exported."""
    if run.ema is None:
        return predict(run.net, run.val_files, run.prep, run.hp.batch_size, run.ctx[0])
    with run.ema.swapped_in():
        return predict(run.net, run.val_files, run.prep, run.hp.batch_size, run.ctx[0])


def sync_running_stats(net: gluon.HybridBlock) -> None:
    """Give every device the average of the devices' BatchNorm running statistics.

    Each device's BatchNorm sees only its share of the batch, so running mean/var differ between
    devices, and save_parameters (checkpoint, export) writes their average: validating with
    device 0's would report numbers of a model that is never exported.
    """
    for param in net.collect_params().values():
        if param.grad_req == "null" and len(param.list_ctx()) > 1:
            param.set_data(param._reduce())  # the mean over devices, as save_parameters computes it


def _update_early_stopping(hp: Hyperparameters, state: TrainingState, val_acc: float) -> None:
    """Track the best epoch (its checkpoint becomes the model) and decide whether to stop.

    Without early stopping the last epoch is the model: a schedule that anneals to zero ends on
    its best weights, and validation may be training data (fit_on_validation) or too small to rank.
    """
    if val_acc > state.best_val_acc or not hp.early_stopping_patience:
        state.best_val_acc, state.best_checkpoint = val_acc, state.name
        state.epochs_without_improvement = 0
    else:
        state.epochs_without_improvement += 1
    if hp.early_stopping_patience and state.epochs_without_improvement >= hp.early_stopping_patience:
        state.stopped_early = True
        log.info("event=early_stop epoch=%d best_val_acc=%.4f best=%s", state.epochs_done, state.best_val_acc, state.best_checkpoint)


def fit(run: Run, state: TrainingState) -> TrainingState:
    """Train from `state` until hp.epochs or early stopping; raises Interrupted on SIGTERM/SIGINT."""
    for epoch in range(state.epochs_done, run.hp.epochs):
        if state.stopped_early:
            break
        started = time.time()
        seed_everything(run.hp.seed + run.workers.seed_offset, epoch)  # dropout masks differ between workers
        sums = train_epoch(run, state, epoch)
        finish_epoch(run, state, epoch, sums, started - state.partial.get("seconds", 0.0))
        if run.stops_after_epoch and epoch + 1 < run.hp.epochs and not state.stopped_early:
            run.workers.leave()
            raise Interrupted(str(run.checkpoint_dir / state.name))  # else: done, save the model
    run.workers.leave()  # every worker together, no round in flight
    return state
