"""Every accepted optimiser builds a Trainer and steps (one and two devices); the GPU default is MXNet's
aggregated multi-tensor SGD; an optimiser MXNet 1.9.1 lacks is refused at once, naming the key."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from gtsrb.common.failure import StepError
from gtsrb.train.hyperparameters import OPTIMIZERS, Hyperparameters
from gtsrb.train.optimizer import AGGREGATION_SIZE, make_trainer


def small_net(ctx: list[mx.Context]) -> gluon.HybridBlock:
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, 3, in_channels=3), gluon.nn.BatchNorm(in_channels=4), gluon.nn.Dense(43, in_units=144))
    net.initialize(mx.init.Xavier(), ctx=ctx)
    return net


@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_accepted_optimizer_builds_a_trainer_that_steps(name: str, devices: int) -> None:
    ctx = [mx.cpu(i) for i in range(devices)]
    hp = Hyperparameters.from_mapping({"optimizer": name})
    net = small_net(ctx)
    trainer = make_trainer(net, hp, ctx, amp=False)
    before = {k: p.data(ctx[0]).asnumpy().copy() for k, p in net.collect_params().items()}
    data = mx.nd.random.uniform(shape=(2 * devices, 3, 8, 8))
    labels = mx.nd.array(np.arange(2 * devices) % 43)
    with autograd.record():
        losses = [gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
                  for x, y in zip(gluon.utils.split_and_load(data, ctx), gluon.utils.split_and_load(labels, ctx), strict=True)]
    autograd.backward(losses)
    trainer.step(data.shape[0])
    changed = [k for k, p in net.collect_params().items() if not np.array_equal(before[k], p.data(ctx[0]).asnumpy())]
    assert changed and all(np.isfinite(p.data(c).asnumpy()).all() for p in net.collect_params().values() for c in ctx)


def test_the_gpu_default_is_sgd_with_aggregated_updates() -> None:
    hp = Hyperparameters()
    assert hp.optimizer == "sgd" and hp.momentum > 0
    trainer = make_trainer(small_net([mx.cpu()]), hp, [mx.cpu()], amp=False)
    assert type(trainer._optimizer).__name__ == "SGD" and trainer._optimizer.aggregate_num == AGGREGATION_SIZE


def test_an_optimizer_mxnet_lacks_is_refused_naming_the_key() -> None:
    for name in ("adamw", "lamb8"):
        with pytest.raises(StepError, match=f"hyperparameter optimizer='{name}' is invalid: it must be sgd, nag, adam"):
            Hyperparameters.from_mapping({"optimizer": name})
