"""The train step's loop against a bare forward/backward loop, and ImageRecordIter decoding.

`train-loop-vs-bare`: images/s of one epoch of the real loop (RecordIO decoding, augmentation,
label smoothing, schedule, metrics) against a bare `net(x); loss; backward; step` loop over the
same batches held in memory, with the same network, trainer and batch size, in one run. A ratio
near 1 means the input pipeline is not the bottleneck (target >= 0.9).
`imagerecorditer-decode`: images/s of the augmenting ImageRecordIter alone against the bare
loop's rate (above 1: decoding keeps up with training).
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
from gtsrb.train.cli import prepare_run
from gtsrb.train.data import train_iter
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Run, train_epoch

RECORDS = 1536  # 24 batches of the CPU preset's 64
ROUNDS = 3  # timed epochs of each loop
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


def bare_rate(run: Run, batches: list[tuple[mx.nd.NDArray, mx.nd.NDArray]]) -> float:
    """Images/s of one pass of forward/backward/step over in-memory batches."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    mx.nd.waitall()
    start = time.perf_counter()
    for data, label in batches:
        with autograd.record():
            loss = loss_fn(run.net(data), label)
        loss.backward()
        run.trainer.step(data.shape[0])
    mx.nd.waitall()
    return sum(d.shape[0] for d, _ in batches) / (time.perf_counter() - start)


def decode_rate(run: Run) -> float:
    """Images/s of the training iterator alone, data read to host memory."""
    start, images = time.perf_counter(), 0
    for i, batch in enumerate(train_iter(run.train_files, run.prep, run.hp, run.hp.batch_size, epoch=9)):
        if i >= run.steps_per_epoch:
            break
        batch.data[0].wait_to_read()
        images += batch.data[0].shape[0]
    return images / (time.perf_counter() - start)


def run() -> None:
    """Measure and print the two benchmark lines."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        for split, count in ((contract.TRAIN_CHANNEL, RECORDS), (contract.VALIDATION_CHANNEL, 64)):
            write_split(root / split, split, count, stored_size(HP.image_size))
        env = Environment(root / contract.TRAIN_CHANNEL, root / contract.VALIDATION_CHANNEL, None, root / "model", root / "ckpt", 0)
        loop = prepare_run(env, HP)
        batches = [(b.data[0].as_in_context(mx.cpu()), b.label[0].as_in_context(mx.cpu()))
                   for _, b in zip(range(loop.steps_per_epoch), train_iter(loop.train_files, loop.prep, HP, HP.batch_size, 2),
                                   strict=False)]
        train_epoch(loop, TrainingState(), epoch=0)  # warm-up: graph building, allocation
        bare_rate(loop, batches)
        ours, bare = 0.0, 0.0
        for epoch in range(1, 1 + ROUNDS):  # interleaved, best of each: the cores are shared
            sums = train_epoch(loop, TrainingState(), epoch=epoch)
            ours = max(ours, sums["images"] / sums["seconds"])
            bare = max(bare, bare_rate(loop, batches))
        report("train-loop-vs-bare", ours, bare, "img/s")
        report("imagerecorditer-decode", decode_rate(loop), bare, "img/s")


if __name__ == "__main__":
    run()
