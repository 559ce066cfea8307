"""Host time per optimiser step of the GPU default network: aggregated SGD (ours) against NAG.

MXNet's engine runs operators asynchronously, so the time `trainer.step()` takes to return is the
host's cost of issuing the step: the gradient sums across devices and the update calls. NAG issues
one update per parameter (MXNet 1.9.1 has no aggregated NAG kernel: ~160 calls for resnet50_v1d);
SGD with momentum issues one `multi_sgd_mom_update` per 60 parameters. On a GPU that host time is
what the GPU waits for between steps when it exceeds the step's GPU work (~45 ms at batch 128).

`optimizer-host-ms-per-step` on one device and `...-4dev` on four (CPU contexts here; GPUs with
`gpu-` when there are some). Ratio below 1: ours issues faster. On a CPU the engine's worker
threads compute the updates on the same cores meanwhile, so CPU numbers are pessimistic for both.
"""

from __future__ import annotations

import dataclasses
import time

import mxnet as mx
from mxnet import autograd, gluon

from bench import QUICK, report
from gtsrb.common import cuda
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.model import create_network, initialise
from gtsrb.train.optimizer import make_trainer

STEPS = 2 if QUICK else 20  # timed steps per optimiser (after 3 untimed ones)
IMAGE_SIZE = 32  # the update's cost does not depend on the input size; a small one keeps the backward cheap


def host_ms_per_step(net: gluon.HybridBlock, hp: Hyperparameters, ctx: list[mx.Context]) -> float:
    """Mean wall time of trainer.step() returning, gradients ready beforehand (milliseconds)."""
    trainer = make_trainer(net, hp, ctx, amp=False)
    total = 0.0
    for step in range(3 + STEPS):
        with autograd.record():  # fresh gradients every step (the Trainer refuses stale ones), untimed
            losses = [net(mx.nd.random.uniform(shape=(2, 3, IMAGE_SIZE, IMAGE_SIZE), ctx=c)).sum() for c in ctx]
        autograd.backward(losses)
        mx.nd.waitall()  # the gradients (and the previous update) are done: only issuing is timed
        start = time.perf_counter()
        trainer.step(2 * len(ctx))
        if step >= 3:
            total += time.perf_counter() - start
    mx.nd.waitall()
    return 1000 * total / STEPS


def measure(ctx: list[mx.Context], name: str) -> None:
    """One line: ours (the default, aggregated SGD) against NAG, on these devices."""
    hp = Hyperparameters()
    net = create_network(hp.model)
    initialise(net, IMAGE_SIZE, ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    ours = host_ms_per_step(net, hp, ctx)
    reference = host_ms_per_step(net, dataclasses.replace(hp, optimizer="nag"), ctx)
    report(name, ours, reference, "ms")


def run() -> None:
    """CPU contexts always; GPUs (one, and up to four) when there are some."""
    measure([mx.cpu()], "optimizer-host-ms-per-step")
    if not QUICK:
        measure([mx.cpu(i) for i in range(4)], "optimizer-host-ms-per-step-4dev")
    gpus = cuda.gpu_count()
    if gpus:
        measure([mx.gpu(0)], "gpu-optimizer-host-ms-per-step")
    if gpus > 1:
        measure([mx.gpu(i) for i in range(min(4, gpus))], f"gpu-optimizer-host-ms-per-step-{min(4, gpus)}dev")


if __name__ == "__main__":
    run()
