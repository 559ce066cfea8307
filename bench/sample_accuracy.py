"""sample-accuracy: test accuracy of our CPU recipe on the real GTSRB sample against a bare CNN.

Ours: the real train step (`preset=cpu`) on the sample packed by the real prepare step, scored on
its test split by the evaluate step's scorer (with the model's own TTA). Reference: a bare
hundred-line-style script on the same records (train + validation when the recipe fits on both)
and the same wall-clock seconds: a small
plain CNN (no BatchNorm), Adam at a constant rate, random crops, no validation. Averaged over
SEEDS. The sample is small (~770 training images after the track split): read large ratios only.
Skipped with one line when the sample is not beside the project.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from bench import report
from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.model_io import load_model
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.common.records import predict
from gtsrb.train.combine import combine_splits
from gtsrb.train.hyperparameters import Hyperparameters

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtsrb-sample"
SEEDS = (1, 2)  # few: each seed trains twice; the ratio of the means is what is reported
HP = Hyperparameters.for_preset("cpu")


def pack(out: Path) -> Path:
    """The sample packed by the real prepare step at the CPU recipe's input size."""
    subprocess.run([sys.executable, "-m", "gtsrb.prepare", "--input", str(SAMPLE), "--output", str(out),
                    "--image-size", str(HP.image_size)], check=True, capture_output=True)
    return out


def train_ours(data: Path, out: Path, seed: int) -> float:
    """Train with the CPU recipe; return the training command's wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gtsrb.train", "--train", str(data / contract.TRAIN_CHANNEL),
                    "--validation", str(data / contract.VALIDATION_CHANNEL), "--model-dir", str(out / "model"),
                    "--checkpoint-dir", str(out / "ckpt"), "--num-gpus", "0", "--preset", "cpu", "--seed", str(seed)],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def accuracy(net: gluon.Block, data: Path, prep: Preprocessing) -> float:
    """Test accuracy through the shared scorer (every record once)."""
    labels, probs = predict(net, contract.record_files(data / "test", "test"), prep, 128, mx.cpu())
    return float((probs.argmax(axis=1) == labels).mean())


def bare_net() -> gluon.HybridBlock:
    """The reference: three conv+pool stages and a dense layer, no BatchNorm (~0.3M parameters)."""
    net = gluon.nn.HybridSequential()
    for width in (32, 64, 128):
        net.add(gluon.nn.Conv2D(width, 3, padding=1, activation="relu"), gluon.nn.MaxPool2D(2))
    net.add(gluon.nn.Flatten(), gluon.nn.Dense(128, activation="relu"), gluon.nn.Dense(GTSRB_NUM_CLASSES))
    return net


def training_files(data: Path) -> contract.RecordFiles:
    """The records the CPU recipe trains on: train, plus validation when it fits on both."""
    parts = [contract.record_files(data / s, s) for s in (contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL)]
    return combine_splits(parts, data / "combined") if HP.fit_on_validation else parts[0]


def train_reference(data: Path, seconds: float, seed: int) -> float:
    """Train the bare net for `seconds` of wall clock; return its test accuracy."""
    mx.random.seed(seed)
    prep = Preprocessing(image_size=HP.image_size)
    net = bare_net()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-3})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    files = training_files(data)
    it = mx.io.ImageRecordIter(path_imgrec=str(files.rec), path_imgidx=str(files.idx), data_shape=prep.data_shape,
                               batch_size=HP.batch_size, shuffle=True, rand_crop=True, seed_aug=seed,
                               **prep.normalize_kwargs())
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        it.reset()
        for batch in it:
            x, y = batch.data[0].as_in_context(mx.cpu()), batch.label[0].as_in_context(mx.cpu())
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(x.shape[0])
        mx.nd.waitall()
    return accuracy(net, data, prep)


def run() -> None:
    """Print the sample-accuracy line (or one skip line without the sample)."""
    if not SAMPLE.is_dir():
        print(f"bench: sample-accuracy skipped: no real GTSRB sample at {SAMPLE}", flush=True)
        return
    ours, reference = [], []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        data = pack(Path(tmp) / "sample")
        for seed in SEEDS:
            seconds = train_ours(data, Path(tmp) / f"ours-{seed}", seed)
            model = load_model(Path(tmp) / f"ours-{seed}" / "model", mx.cpu())
            ours.append(accuracy(model.net, data, model.preprocessing))
            reference.append(train_reference(data, seconds, seed))
            print(f">> seed={seed} seconds={seconds:.0f} ours={ours[-1]:.4f} reference={reference[-1]:.4f}", file=sys.stderr, flush=True)
    report("sample-accuracy", float(np.mean(ours)), float(np.mean(reference)), "test_accuracy")


if __name__ == "__main__":
    run()
