"""The model server against the in-process predictor, on the CPU preset's network and the same images.

`serve-vs-predict`: images/s of single-image HTTP requests from CONCURRENT_CLIENTS clients to
`python -m gtsrb.serve` (gunicorn, one worker per CPU) against images/s of the in-process loop
predicting the same images one at a time with the same Predictor (aim: ratio >= 0.8).
`serve-p99-latency`: p99 latency of single-image requests from one client against the mean
in-process single-image time (the ratio is what HTTP and the server add; lower is better).
Both sides run ROUNDS times, alternating, and each keeps its best round.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mxnet as mx
import numpy as np

from bench import report
from gtsrb.common.classes import GTSRB_CLASS_NAMES, GTSRB_NUM_CLASSES
from gtsrb.common.model_io import save_model
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.serve import protocol
from gtsrb.serve.predictor import Predictor
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.model import build_network

IMAGES = 300
CONCURRENT_CLIENTS = 4
ROUNDS = 3
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtsrb-sample" / "GTSRB" / "Final_Test" / "Images"


def cpu_model(folder: Path) -> Path:
    """The CPU preset's network (random weights: speed does not depend on them), saved as train saves it."""
    hp = Hyperparameters.for_preset("cpu")
    net = build_network(hp.model, GTSRB_NUM_CLASSES, hp.image_size, [mx.cpu()], None, hp.head_lr_mult)
    net(mx.nd.zeros((1, 3, hp.image_size, hp.image_size)))
    save_model(net, folder, Preprocessing(hp.image_size), {"model": hp.model}, [], list(GTSRB_CLASS_NAMES))
    return folder


def image_files(count: int) -> list[bytes]:
    """Real GTSRB test images (PPM, ~30-100 px) when the sample is beside the project, else JPEGs."""
    if SAMPLE.is_dir():
        return [p.read_bytes() for p in sorted(SAMPLE.glob("*.ppm"))[:count]]
    import cv2

    rng = np.random.default_rng(0)
    return [cv2.imencode(".jpg", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))[1].tobytes() for _ in range(count)]


def in_process(predictor: Predictor, images: list[bytes]) -> list[float]:
    """Seconds per image of the in-process single-image loop."""
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
    protocol.wait_until_ready(url, 120, alive=lambda: proc.poll() is None)
    return proc, url


def post_all(url: str, images: list[bytes]) -> list[float]:
    """Seconds per request of one client posting each image on one kept-alive connection.

    http.client, not requests: the clients share the 2 cores with the server, and requests costs
    ~1 ms of CPU per call, which would be billed to the server.
    """
    host, port = url.removeprefix("http://").split(":")
    connection, times = http.client.HTTPConnection(host, int(port), timeout=30), []
    for image in images:
        start = time.perf_counter()
        connection.request("POST", protocol.INVOCATIONS_PATH, body=image, headers={"Content-Type": "application/x-image"})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the server answered {answer.status}")
        times.append(time.perf_counter() - start)
    connection.close()
    return times


def served_rate(url: str, images: list[bytes]) -> float:
    """Images/s of CONCURRENT_CLIENTS clients posting their share of the images at once."""
    shares = [images[i::CONCURRENT_CLIENTS] for i in range(CONCURRENT_CLIENTS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        list(pool.map(lambda share: post_all(url, share), shares))
    return len(images) / (time.perf_counter() - start)


def run() -> None:
    """Print the two lines; the rounds alternate and each side keeps its best (a shared machine is noisy)."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        model, images = cpu_model(Path(work) / "model"), image_files(IMAGES)
        predictor = Predictor.load(model)
        predictor.predict(images[:1])  # warm-up
        proc, url = start_server(model)
        try:
            post_all(url, images[: 4 * CONCURRENT_CLIENTS])  # warm every worker
            local, served, single = [], [], []
            for _ in range(ROUNDS):
                local.append(in_process(predictor, images))
                served.append(served_rate(url, images))
                single.append(post_all(url, images))
        finally:
            proc.terminate()
            proc.wait(30)
    best_local = min(local, key=sum)
    report("serve-vs-predict", max(served), len(best_local) / sum(best_local), "img/s")
    p99 = min(float(np.percentile(times, 99)) for times in single)
    report("serve-p99-latency", 1000 * p99, 1000 * float(np.mean(best_local)), "ms")
