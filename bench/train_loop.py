"""The train step's loop against a bare forward/backward loop, and ImageRecordIter decoding.

`train-loop-vs-bare`: images/s of one epoch of the real loop (RecordIO decoding, augmentation,
label smoothing, schedule, metrics) against a bare `net(x); loss; backward; step` loop over the
same batches held in memory, with the same network, trainer, batch size and input gradient (which
the loop attaches only where the network needs it), in one run. A ratio near 1 means the input
pipeline and the loop's bookkeeping cost nothing (target >= 0.95).
`imagerecorditer-decode`: images/s of the augmenting ImageRecordIter alone against the bare
loop's rate (above 1: decoding keeps up with training).
With a GPU, the same two lines again as `gpu-...` for the GPU defaults (resnet50_v1d, 96 px, AMP,
every GPU); without one, `bench: gpu-train-loop-vs-bare skipped: no GPU`. The bare loop of the
GPU lines splits its batches over the same GPUs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from bench import report
from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.data import train_iter
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Run, train_epoch
from gtsrb.train.step import prepare_run

RECORDS = 1536  # 24 batches of the CPU preset's 64
ROUNDS = 5  # timed epochs of each loop (best of 5: the shared cores make single epochs vary +-25%)
HP = Hyperparameters.from_mapping({"preset": "cpu", "epochs": "3"})


def write_split(folder: Path, split: str, count: int, side: int) -> None:
    """`count` random JPEG squares with labels 0..42, packed as the prepare step packs them."""
    folder.mkdir(parents=True)
    files = contract.record_files(folder, split)
    rng = np.random.default_rng(0)
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    for i in range(count):
        image = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        writer.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, float(i % 43), i, 0), image, quality=95))
    writer.close()


def bare_rate(run: Run, batches: list[tuple[list[mx.nd.NDArray], list[mx.nd.NDArray]]]) -> float:
    """Images/s of one pass of forward/backward/step over in-memory batches (split over the devices)."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    mx.nd.waitall()
    start = time.perf_counter()
    for data, label in batches:
        for x in data if run.input_needs_grad else ():
            x.attach_grad()  # the backward the loop needs for the input BatchNorm (Run.input_needs_grad)
        with autograd.record():
            losses = [loss_fn(run.net(x), y) for x, y in zip(data, label, strict=True)]
        autograd.backward(losses)
        run.trainer.step(sum(x.shape[0] for x in data))
    mx.nd.waitall()
    return sum(x.shape[0] for data, _ in batches for x in data) / (time.perf_counter() - start)


def decode_rate(run: Run) -> float:
    """Images/s of the training iterator alone, data read to host memory."""
    start, images = time.perf_counter(), 0
    for i, batch in enumerate(train_iter(run.train_files, run.prep, run.hp, run.hp.batch_size, epoch=9)):
        if i >= run.steps_per_epoch:
            break
        batch.data[0].wait_to_read()
        images += batch.data[0].shape[0]
    return images / (time.perf_counter() - start)


def measure(hp: Hyperparameters, num_gpus: int, prefix: str = "") -> None:
    """Print train-loop-vs-bare and imagerecorditer-decode for these hyperparameters and devices."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        records = RECORDS * max(1, num_gpus) * max(1, hp.batch_size // 64)  # 24+ batches on every device
        for split, count in ((contract.TRAIN_CHANNEL, records), (contract.VALIDATION_CHANNEL, 64)):
            write_split(root / split, split, count, stored_size(hp.image_size))
        env = Environment(root / contract.TRAIN_CHANNEL, root / contract.VALIDATION_CHANNEL, None, root / "model", root / "ckpt", num_gpus)
        loop = prepare_run(env, hp)
        batches = [(gluon.utils.split_and_load(b.data[0], loop.ctx), gluon.utils.split_and_load(b.label[0], loop.ctx))
                   for _, b in zip(range(loop.steps_per_epoch), train_iter(loop.train_files, loop.prep, hp, hp.batch_size, 2),
                                   strict=False)]
        train_epoch(loop, TrainingState(), epoch=0)  # warm-up: graph building, allocation
        bare_rate(loop, batches)
        ours, bare = 0.0, 0.0
        for epoch in range(1, 1 + ROUNDS):  # interleaved, best of each: the cores are shared
            sums = train_epoch(loop, TrainingState(), epoch=epoch)
            ours = max(ours, sums["images"] / sums["seconds"])
            bare = max(bare, bare_rate(loop, batches))
        report(f"{prefix}train-loop-vs-bare", ours, bare, "img/s")
        report(f"{prefix}imagerecorditer-decode", decode_rate(loop), bare, "img/s")


def run() -> None:
    """The CPU preset on the CPU; with a GPU also the GPU defaults (AMP, all GPUs), else a skip line."""
    measure(HP, num_gpus=0)
    gpus = mx.context.num_gpus()
    if not gpus:
        print("bench: gpu-train-loop-vs-bare skipped: no GPU", flush=True)
        return
    measure(Hyperparameters.from_mapping({"epochs": "3"}), num_gpus=gpus, prefix="gpu-")


if __name__ == "__main__":
    run()
