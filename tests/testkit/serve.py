"""Test helpers for the model server: a tiny trained model and a real server process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import requests

from gtsrb.serve import protocol

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 60  # a worker imports MXNet (seconds on a busy 2-core machine)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_bytes(image_rgb: np.ndarray) -> bytes:
    """An RGB uint8 image as PNG file bytes."""
    ok, data = cv2.imencode(".png", image_rgb[:, :, ::-1])
    assert ok
    return data.tobytes()


@dataclass
class ServerProcess:
    """A running `python -m gtsrb.serve` and where it answers."""

    proc: subprocess.Popen
    url: str
    log: Path

    def post(self, body: bytes, content_type: str, **headers) -> requests.Response:
        """POST /invocations."""
        return requests.post(f"{self.url}{protocol.INVOCATIONS_PATH}", data=body,
                             headers={"Content-Type": content_type, **headers}, timeout=30)

    def worker_pids(self) -> set[int]:
        """The gunicorn workers (children of the master)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def wait_ready(self, seconds: float = START_SECONDS) -> None:
        """Until /ping answers 200 (or fail with the server's log)."""
        if not protocol.wait_until_ready(self.url, seconds, alive=lambda: self.proc.poll() is None):
            state = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else f"no 200 within {seconds} s"
            raise AssertionError(f"/ping never answered 200 ({state}):\n{self.log.read_text()}")

    def wait_all_loaded(self, workers: int = 2, seconds: float = START_SECONDS) -> None:
        """Until every worker logged its loaded model (a /ping 200 speaks for one worker only)."""
        deadline = time.monotonic() + seconds
        while self.log.read_text().count("event=model_loaded") < workers:
            assert time.monotonic() < deadline, f"not every worker loaded its model:\n{self.log.read_text()}"
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (SIGKILL and fail after `timeout` s, as SageMaker would)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the server did not stop within {timeout} s of SIGTERM") from None


def launch(model: Path | str, log: Path, *args: str, **env: str) -> ServerProcess:
    """Start the server (not waiting for it) with extra CLI args and environment."""
    given = env.get(protocol.ENV_PORT, "")
    port = int(given) if given.isdigit() else free_port()  # from SageMaker's variable (unless malformed), else --port
    port_flag = [] if protocol.ENV_PORT in env else ["--port", str(port)]
    full_env = {**os.environ, protocol.ENV_WORKERS: "2", **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gtsrb.serve", "--model", str(model), *port_flag, "--host", "127.0.0.1", *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=REPO,
        )
    return ServerProcess(proc, f"http://127.0.0.1:{port}", log)


@contextmanager
def running_server(model: Path | str, log: Path, *args: str, **env: str):
    """A ready server, stopped (and checked to stop cleanly) afterwards."""
    server = launch(model, log, *args, **env)
    try:
        server.wait_ready()
        server.wait_all_loaded()
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()


def recordio_body(images: list[bytes]) -> bytes:
    """A batch transform request body: the images as RecordIO records (SplitType=RecordIO)."""
    from gtsrb.common.recordio_format import IndexedRecordWriter, image_record

    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "batch.rec"
        writer = IndexedRecordWriter(Path(tmp) / "batch.idx", rec)
        for i, image in enumerate(images):
            writer.write_idx(i, image_record(0, i, image))
        writer.close()
        return rec.read_bytes()


def hdr_bomb(side: int) -> bytes:
    """A valid Radiance HDR file of side x side pixels, run-length encoded: ~64 bytes per row."""
    runs = [127] * (side // 127) + ([side % 127] if side % 127 else [])
    component = b"".join(bytes([128 + n, 7]) for n in runs)
    row = bytes([2, 2, side >> 8, side & 255]) + component * 4  # a new-style RLE scanline, R G B E
    return b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (side, side) + row * side


@contextmanager
def slow_clients(url: str) -> Iterator[None]:
    """Six idle connections, one client trickling its headers and four trickling bodies, for the block."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stop, sockets, threads = threading.Event(), [], []

    def trickle(sock: socket.socket, piece: bytes) -> None:
        while not stop.is_set():
            try:
                sock.sendall(piece)
            except OSError:
                return
            stop.wait(0.3)

    def connect(first: bytes, piece: bytes | None) -> None:
        sock = socket.create_connection((host, int(port)))
        sockets.append(sock)
        sock.sendall(first)
        if piece is not None:
            threads.append(threading.Thread(target=trickle, args=(sock, piece), daemon=True))

    try:
        for _ in range(6):
            connect(b"", None)
        connect(b"POST /invocations HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n")
        for _ in range(4):
            connect(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n",
                    b"\0" * 10)
        for thread in threads:
            thread.start()
        time.sleep(1)
        yield
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


def pings_within_2_s(url: str, count: int) -> list[int | str]:
    """SageMaker's health check `count` times: each status, or the error when no answer came in 2 s."""
    answers: list[int | str] = []
    for _ in range(count):
        try:
            answers.append(requests.get(f"{url}{protocol.PING_PATH}", timeout=2).status_code)
        except requests.RequestException as err:
            answers.append(type(err).__name__)
    return answers
