"""The AMP path on two CPU contexts (bfloat16): `python multi_device_amp_run.py CHANNELS OUT` prints JSON.

A separate process because amp.init() patches MXNet's operators for the rest of the process. It
1. trains one epoch on cpu:1 and on cpu:2 with AMP from the same seed (histories compared by the test);
2. forces an overflow step on cpu:2 (one gradient of the second device set to inf after the backward
   pass, as a float16 overflow on one GPU would) through the real train_batch and reports whether
   every weight on every device stayed finite and unchanged,
   and the loss scale before and after;
3. saves a checkpoint and restores it into a fresh trainer, reporting the restored loss scale.
"""
import json
import sys
from pathlib import Path

import numpy as np
from mxnet import gluon

from gtsrb.train import checkpoint
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.data import train_iter
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import finish_epoch, train_batch, train_epoch
from gtsrb.train.optimizer import make_trainer
from gtsrb.train.step import prepare_run

channels, out = Path(sys.argv[1]), Path(sys.argv[2])
result: dict = {}


def make_run(devices: str, name: str):
    hp = Hyperparameters.from_mapping({"preset": "cpu", "image_size": "32", "epochs": "2", "batch_size": "32", "lr": "0.05",
                                       "warmup_epochs": "0", "amp": "True", "devices": devices,
                                       # no dropout (its masks differ with the device count), the data as packed
                                       "model": "cifar_resnet20_v2", "fit_on_validation": "False", "min_class_share": "0"})
    env = Environment(channels / "train", channels / "validation", None, out / name / "model", out / name / "ckpt", 0)
    return prepare_run(env, hp)


def weights(run, trainable: bool = True) -> list[np.ndarray]:
    """Every device's copy of the trained parameters (or of all, BatchNorm statistics included)."""
    return [d.asnumpy() for p in run.net.collect_params().values() if p.grad_req != "null" or not trainable
            for d in p.list_data()]


for devices in ("cpu:1", "cpu:2"):
    run = make_run(devices, devices.replace(":", ""))
    state = TrainingState(seed=run.hp.seed, hyperparameters=run.hp.to_dict())
    sums = train_epoch(run, state, epoch=0)
    result[devices] = finish_epoch(run, state, 0, sums, 0.0)

# 2. a forced overflow through the real step, on the two-context run
scaler = run.trainer._amp_loss_scaler
scale_before = scaler._next_loss_scale
step = run.trainer.step


def overflowing_step(batch_size: int) -> None:
    """The Trainer's step after an overflow in one gradient on the second device only."""
    grad = next(p for p in run.net.collect_params().values() if p.grad_req != "null").list_grad()[1]
    grad[:] = grad + float("inf")
    step(batch_size)


run.trainer.step = overflowing_step
before = weights(run)
batch = next(iter(train_iter(run.train_files, run.prep, run.hp, run.hp.batch_size, epoch=1)))
train_batch(run, batch, gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False))
after = weights(run)
run.trainer.step = step
result["overflow"] = {
    "all_finite": all(np.isfinite(w).all() for w in weights(run, trainable=False)),
    "unchanged": all(np.array_equal(a, b) for a, b in zip(before, after, strict=True)),
    "scale_before": scale_before, "scale_after": scaler._next_loss_scale,
}

# 3. the loss scale survives a checkpoint
path = checkpoint.save(out / "cpu2" / "ckpt", run.net, run.trainer, state)
fresh = make_trainer(run.net, run.hp, run.ctx, amp=True)
checkpoint.restore(path, run.net, fresh)
result["restored_scale"] = fresh._amp_loss_scaler._next_loss_scale
print(json.dumps(result))
