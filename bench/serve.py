"""The model server against the in-process predictor, on the CPU preset's network and the same images.

`serve-vs-predict`: images/s of single-image HTTP requests from CONCURRENT_CLIENTS clients to
`python -m gtsrb.serve` (gunicorn, one worker per CPU) against images/s of the in-process loop
predicting the same images one at a time with the same Predictor (aim: ratio >= 0.8).
`serve-p99-latency`: p99 latency of single-image requests from one client against the mean
in-process single-image time (the ratio is what HTTP and the server add; lower is better).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mxnet as mx
import numpy as np
import requests

from bench import report
from gtsrb.common.model_io import save_model
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.serve import protocol
from gtsrb.serve.predictor import Predictor
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.model import build_network

IMAGES = 300
CONCURRENT_CLIENTS = 4
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtsrb-sample" / "GTSRB" / "Final_Test" / "Images"


def cpu_model(folder: Path) -> Path:
    """The CPU preset's network (random weights: speed does not depend on them), saved as train saves it."""
    hp = Hyperparameters.for_preset("cpu")
    net = build_network(hp.model, hp.image_size, [mx.cpu()], None, hp.head_lr_mult)
    net(mx.nd.zeros((1, 3, hp.image_size, hp.image_size)))
    save_model(net, folder, Preprocessing(hp.image_size), {"model": hp.model}, [])
    return folder


def image_files(count: int) -> list[bytes]:
    """Real GTSRB test images (PPM, ~30-100 px) when the sample is beside the project, else JPEGs."""
    if SAMPLE.is_dir():
        return [p.read_bytes() for p in sorted(SAMPLE.glob("*.ppm"))[:count]]
    import cv2

    rng = np.random.default_rng(0)
    return [cv2.imencode(".jpg", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))[1].tobytes() for _ in range(count)]


def in_process(model: Path, images: list[bytes]) -> list[float]:
    """Seconds per image of the in-process single-image loop (after one warm-up)."""
    predictor = Predictor.load(model)
    predictor.predict(images[:1])
    times = []
    for image in images:
        start = time.perf_counter()
        predictor.predict([image])
        times.append(time.perf_counter() - start)
    return times


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    """The server on a free port, once /ping answers 200 on every worker's behalf."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "gtsrb.serve", "--model", str(model), "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{url}{protocol.PING_PATH}", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return proc, url


def post_all(url: str, images: list[bytes]) -> list[float]:
    """Seconds per request of one client posting each image (keep-alive session)."""
    session, times = requests.Session(), []
    for image in images:
        start = time.perf_counter()
        answer = session.post(f"{url}{protocol.INVOCATIONS_PATH}", data=image, headers={"Content-Type": "application/x-image"})
        answer.raise_for_status()
        times.append(time.perf_counter() - start)
    return times


def run() -> None:
    """Print the two lines."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        model, images = cpu_model(Path(work) / "model"), image_files(IMAGES)
        local = in_process(model, images)
        proc, url = start_server(model)
        try:
            post_all(url, images[: 4 * CONCURRENT_CLIENTS])  # warm every worker
            shares = [images[i::CONCURRENT_CLIENTS] for i in range(CONCURRENT_CLIENTS)]
            start = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
                list(pool.map(lambda share: post_all(url, share), shares))
            served_rate = len(images) / (time.perf_counter() - start)
            single = post_all(url, images)
        finally:
            proc.terminate()
            proc.wait(30)
    report("serve-vs-predict", served_rate, len(local) / sum(local), "img/s")
    report("serve-p99-latency", 1000 * float(np.percentile(single, 99)), 1000 * float(np.mean(local)), "ms")
