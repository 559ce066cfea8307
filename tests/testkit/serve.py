"""Test helpers for the model server: a tiny trained model and a real server process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
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
    port = int(env.get(protocol.ENV_PORT) or free_port())  # from SageMaker's variable, else --port
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
