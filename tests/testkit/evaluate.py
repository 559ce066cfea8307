"""Test data for the evaluate step: a tiny packed split and tiny Gluon models trained here.

The images are 18 px squares (stored_size(16)) whose class shows as a colour shifted per image,
so a net of ~22k parameters learns it in a fraction of a second and still gets about one test
image in six wrong: there are mistakes to count and to picture.
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_CLASS_NAMES, write_class_names
from gtsrb.common.model_io import save_model
from gtsrb.common.preprocessing import Preprocessing, stored_size

IMAGE_SIZE = 16
CLASSES = (1, 2, 13, 14, 17, 38)  # labels used by the tiny data set (a subset of the 43)
TEST_RECORDS = 37  # prime: never a multiple of a batch size the tests use
BATCH_SIZE = 8


def make_images(count: int, seed: int, side: int = stored_size(IMAGE_SIZE)) -> tuple[np.ndarray, np.ndarray]:
    """`count` RGB uint8 images (N, side, side, 3) and their labels, cycling through CLASSES."""
    rng = np.random.default_rng(seed)
    labels = np.array([CLASSES[i % len(CLASSES)] for i in range(count)], dtype=np.int64)
    palette = np.random.default_rng(42).integers(40, 216, size=(max(CLASSES) + 1, 3))
    # A colour shift per image (not per pixel: pixel noise averages out) makes classes overlap.
    shift = rng.normal(0, 20, size=(count, 1, 1, 3))
    images = palette[labels][:, None, None, :] + shift + rng.normal(0, 30, size=(count, side, side, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_split(folder: Path, images: np.ndarray, labels: np.ndarray, split: str = "test") -> contract.RecordFiles:
    """Pack images as the prepare step does: split.rec/.idx/.lst, PNG-encoded, keys 0..N-1."""
    folder.mkdir(parents=True, exist_ok=True)
    files = contract.record_files(folder, split)
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    with open(files.lst, "w") as lst:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            header = mx.recordio.IRHeader(0, float(label), i, 0)
            writer.write_idx(i, mx.recordio.pack_img(header, image[:, :, ::-1], img_fmt=".png"))
            lst.write(f"{i}\t{float(label)}\timg_{i:05d}.png\n")
    writer.close()
    write_class_names(folder, list(GTSRB_CLASS_NAMES))  # as prepare writes beside every split
    return files


def to_batch(images: np.ndarray, prep: Preprocessing) -> mx.nd.NDArray:
    """Centre crop and normalise (N, H, W, 3) uint8 as the evaluation iterator does, to NCHW."""
    top = (images.shape[1] - prep.image_size) // 2
    left = (images.shape[2] - prep.image_size) // 2
    crop = images[:, top : top + prep.image_size, left : left + prep.image_size].astype(np.float32)
    crop = (crop - np.array(prep.mean_rgb, np.float32)) / np.array(prep.std_rgb, np.float32)
    return mx.nd.array(crop.transpose(0, 3, 1, 2))


def train_tiny_net(
    num_outputs: int, steps: int = 60, seed: int = 0, image_size: int = IMAGE_SIZE
) -> mx.gluon.HybridBlock:
    """A conv + dense net fitted for a few steps on fresh images of the same generator."""
    mx.random.seed(seed)
    net = mx.gluon.nn.HybridSequential()
    net.add(
        mx.gluon.nn.Conv2D(8, 3, padding=1, activation="relu"),
        mx.gluon.nn.MaxPool2D(2),
        mx.gluon.nn.Flatten(),  # ties the net to its input size, as a real head would
        mx.gluon.nn.Dense(num_outputs),
    )
    net.initialize(mx.init.Xavier())
    net.hybridize()
    images, labels = make_images(256, seed=seed + 100, side=stored_size(image_size))
    data, label = to_batch(images, Preprocessing(image_size)), mx.nd.array(labels % num_outputs)
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(steps):
        pick = slice((step * 32) % 256, (step * 32) % 256 + 32)
        with mx.autograd.record():
            loss = loss_fn(net(data[pick]), label[pick])
        loss.backward()
        trainer.step(32)
    return net


def save_tiny_model(folder: Path, net: mx.gluon.HybridBlock, image_size: int = IMAGE_SIZE) -> Path:
    """Save with the real model_io contract, declaring `image_size` as the network input."""
    save_model(net, folder, Preprocessing(image_size), {"image_size": image_size}, [], list(GTSRB_CLASS_NAMES))
    return folder
