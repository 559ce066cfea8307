"""Helpers of the train step's tests: tiny separable RecordIO channels and a fake /opt/ml tree.

The channels are packed like the prepare step packs them (squares of stored_size(image_size)
px, `{split}.rec/.idx/.lst`), with classes that differ in colour and shape, so a small net
learns them in a few epochs on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from gtsrb.common import contract, sagemaker_job
from gtsrb.common.classes import GTSRB_CLASS_NAMES, write_class_names
from pipelines.local.emulated_job import JobDirs, link_channels
from pipelines.local.emulated_job import write_job_config as write_job_config_files

ROOT = Path(__file__).resolve().parents[2]
IMAGE_SIZE = 32  # the fast runs' input size (the CPU preset's is 40: 32 px is ~1.5x faster)
NUM_TOY_CLASSES = 6  # labels 0..5 of the 43: chance is 1/6
# Hyperparameters of a fast run: the CPU preset's net at 32 px, a few short epochs.
FAST_HPS: dict[str, str] = {"preset": "cpu", "image_size": str(IMAGE_SIZE), "epochs": "3", "batch_size": "16", "lr": "0.05",
                            "warmup_epochs": "0.5"}
_COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 30), (30, 220, 220), (220, 30, 220)]


def toy_image(label: int, rng: np.random.Generator, side: int) -> np.ndarray:
    """A noisy grey square with a class-coloured shape (circle, square or triangle) in it."""
    image = rng.integers(60, 140, size=(side, side, 3), dtype=np.uint8)
    colour = tuple(int(v) for v in _COLOURS[label % len(_COLOURS)])
    centre, radius = side // 2 + int(rng.integers(-2, 3)), side // 3
    shape = label % 3
    if shape == 0:
        cv2.circle(image, (centre, centre), radius, colour, -1)
    elif shape == 1:
        cv2.rectangle(image, (centre - radius, centre - radius), (centre + radius, centre + radius), colour, -1)
    else:
        points = np.array([[centre, centre - radius], [centre - radius, centre + radius], [centre + radius, centre + radius]])
        cv2.fillPoly(image, [points.astype(np.int32)], colour)
    return image


def write_split(folder: Path, split: str, labels: list[int], side: int, seed: int = 0) -> contract.RecordFiles:
    """Pack toy images with these labels as `folder/{split}.rec/.idx/.lst` (RGB, JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = contract.record_files(folder, split)
    rng = np.random.default_rng(seed)
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    lines = []
    for i, label in enumerate(labels):
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        # pack_img expects BGR as cv2 writes it; ImageRecordIter decodes back to RGB.
        bgr = cv2.cvtColor(toy_image(label, rng, side), cv2.COLOR_RGB2BGR)
        writer.write_idx(i, mx.recordio.pack_img(header, bgr, quality=95, img_fmt=".jpg"))
        lines.append(f"{i}\t{float(label)}\t{label:05d}_{i:05d}.jpg")
    writer.close()
    files.lst.write_text("\n".join(lines) + "\n")
    write_class_names(folder, list(GTSRB_CLASS_NAMES))  # as prepare writes beside every split
    return files


def balanced_labels(per_class: int) -> list[int]:
    """per_class records of each toy class, interleaved."""
    return [k for _ in range(per_class) for k in range(NUM_TOY_CLASSES)]


def run_module(argv: list[str], base: Path, **popen: object) -> subprocess.Popen:
    """Start `python -m gtsrb.train ARGV` with SAGEMAKER_BASE_DIR=base, output piped."""
    env = {**os.environ, sagemaker_job.BASE_DIR_ENV: str(base), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gtsrb.train", *argv], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def write_job_config(base: Path, hps: dict[str, str], channels: dict[str, Path]) -> None:
    """The /opt/ml tree of a job the real toolkit runs here: config files (host localhost, which
    resolves without SageMaker's DNS) and the channel data under input/data."""
    job = JobDirs(base)
    write_job_config_files(job, channels, hps, host="localhost", interface="lo")
    link_channels(job, channels)


def run_json_script(script: str, channels: dict[str, Path], out: Path, timeout: float) -> dict:
    """Run tests/train/<script> on the channels' folder (AMP patches MXNet for the whole process);
    its last stdout line, a JSON report."""
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "train" / script), str(channels["train"].parent), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
