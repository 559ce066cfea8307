"""The train step's loop against a bare forward/backward loop, and ImageRecordIter decoding.

`train-loop-vs-bare`: images/s of one epoch of the real loop (RecordIO decoding, augmentation,
label smoothing, schedule, metrics) against a bare `net(x); loss; backward; step` loop over the
same batches held in memory, with the same network, trainer, batch size and input gradient (which
the loop attaches only where the network needs it), in one run. A ratio near 1 means the input
pipeline and the loop's bookkeeping cost nothing (target >= 0.95).
`imagerecorditer-decode`: images/s of the augmenting ImageRecordIter alone against the bare
loop's rate (above 1: decoding keeps up with training).
With a GPU, the same two lines again as `gpu-...` for the GPU defaults (resnet50_v1d, 96 px, AMP,
every GPU) over epochs of GPU_STEPS steps (long enough for cuDNN autotune and the first-step
allocations to wash out); without one, `bench: gpu-train-loop-vs-bare skipped: no GPU`. The bare
loop of the GPU lines splits its batches over the same GPUs. `make bench-gpu` runs this module in
the GPU image (the host venv has the CPU wheel).
The records are photographs of rendered signs (gtsrb.demo_data: scenes, light, blur, noise), JPEG
encoded as prepare encodes them: random noise compresses badly and decodes slower than real signs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from bench import QUICK, report
from gtsrb.common import contract, cuda
from gtsrb.common.classes import GTSRB_CLASS_NAMES, GTSRB_NUM_CLASSES, write_class_names
from gtsrb.common.preprocessing import stored_size
from gtsrb.demo_data.scene import photograph, physical_sign
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.data import train_iter
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Run, train_epoch
from gtsrb.train.step import prepare_run

RECORDS = 1536  # 24 batches of the CPU preset's 64
GPU_STEPS = 200  # steps per timed GPU epoch
ROUNDS = 1 if QUICK else 5  # timed epochs of each loop (best of 5: the shared cores make single epochs vary +-25%)
POOL = 344  # distinct photographs (8 per class), cycled through the records
HP = Hyperparameters.from_mapping({"preset": "cpu", "epochs": "3"})


def photographs(side: int) -> list[bytes]:
    """POOL rendered sign photographs of `side` px, JPEG-encoded (quality 95, as prepare packs)."""
    rng = np.random.default_rng(0)
    encoded = []
    for i in range(POOL):
        image, _ = photograph(physical_sign(i % 43, rng), side, rng)
        encoded.append(mx.recordio.pack_img(mx.recordio.IRHeader(0, 0.0, 0, 0), image, quality=95))
    return [mx.recordio.unpack(record)[1] for record in encoded]


def write_split(folder: Path, split: str, count: int, pool: list[bytes]) -> None:
    """`count` records cycling through the pool, labels 0..42 (photo i shows class i % 43)."""
    folder.mkdir(parents=True)
    files = contract.record_files(folder, split)
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    for i in range(count):
        j = i % len(pool)
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, float(j % GTSRB_NUM_CLASSES), i, 0), pool[j]))
    writer.close()
    write_class_names(folder, list(GTSRB_CLASS_NAMES))  # as prepare writes beside every split


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
        records = GPU_STEPS * hp.batch_size if num_gpus and not QUICK else RECORDS  # CPU: 24 batches of 64
        pool = photographs(stored_size(hp.image_size))
        for split, count in ((contract.TRAIN_CHANNEL, records), (contract.VALIDATION_CHANNEL, 64)):
            write_split(root / split, split, count, pool)
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
    gpus = cuda.gpu_count()
    if not gpus:
        print("bench: gpu-train-loop-vs-bare skipped: no GPU", flush=True)
        return
    measure(Hyperparameters.from_mapping({"epochs": "3"}), num_gpus=gpus, prefix="gpu-")


if __name__ == "__main__":
    run()
