"""gunicorn running the Flask app: worker count, timeouts and signals for SageMaker hosting.

gunicorn's master binds the port before any worker starts (connections are accepted at once),
replaces a worker that dies, and on SIGTERM stops accepting at once and lets workers finish
their requests for up to GRACEFUL_SECONDS (SageMaker sends SIGKILL 30 s after SIGTERM). MXNet
is imported only in the workers, after the fork.

Each worker holds one model and serves its connections with THREADS threads (gunicorn's gthread
worker): a slow or idle client costs one thread, not the worker, so /ping answers while clients
trickle; the forward passes take turns on the model's lock (gtsrb.serve.predictor). See
docs/serving.md for why this and not a buffering proxy in front.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from gtsrb.common.failure import StepError
from gtsrb.serve import protocol

REALTIME_TIMEOUT_SECONDS = 55  # below SageMaker's 60 s limit for an endpoint invocation
BATCH_TIMEOUT_SECONDS = 590  # below the 600 s a batch transform allows per request
GRACEFUL_SECONDS = 20  # below the 30 s between SageMaker's SIGTERM and SIGKILL
WATCHDOG_SECONDS = 30
THREADS = 32  # connections one worker serves at once (slow clients, /ping beside an inference)
LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"


@dataclass(frozen=True)
class ServerSettings:
    """What every worker needs to know; read from the environment the server sets."""

    model: str  # a model directory or model.tar.gz (registry URIs are resolved before)
    max_payload_mb: float
    batch: bool  # batch transform (SAGEMAKER_BATCH)
    workers: int
    timeout: float = REALTIME_TIMEOUT_SECONDS  # seconds a request may take (checked between batches)


def env_flag(name: str) -> bool:
    """A SageMaker boolean environment variable ("true"/"false")."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def gpu_count() -> int:
    """NVIDIA GPUs visible to this container (device files; no MXNet import in the master)."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def env_number(name: str, kind: type[int] | type[float], default: float, example: str) -> float:
    """A positive number from the environment (default when unset); StepError with one sentence."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if not value > 0 or value == float("inf"):
        what = "whole number" if kind is int else "number"
        raise StepError(f"{name}={text!r} is not a positive {what}; set it like {name}={example}, or unset it.")
    return value


def worker_count() -> int:
    """SAGEMAKER_MODEL_SERVER_WORKERS, else one per GPU, else one per CPU this process may use."""
    return int(env_number(protocol.ENV_WORKERS, int, gpu_count() or len(os.sched_getaffinity(0)), "2"))


def settings_from_env(model: str) -> ServerSettings:
    """The settings of every worker, from SageMaker's environment; StepError for a malformed one."""
    batch = env_flag(protocol.ENV_BATCH)
    return ServerSettings(
        model=model,
        max_payload_mb=env_number(protocol.ENV_MAX_PAYLOAD, float, protocol.DEFAULT_MAX_PAYLOAD_MB, "6"),
        batch=batch,
        workers=worker_count(),
        timeout=env_number(protocol.ENV_TIMEOUT, int, BATCH_TIMEOUT_SECONDS if batch else REALTIME_TIMEOUT_SECONDS, "60"),
    )


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own error answer (a malformed request, headers too large, ...) as our JSON."""
    message = f"{reason}: {mesg}" if mesg else f"{reason}."
    body = json.dumps(protocol.error_document(message)).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: {protocol.JSON_CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


class Worker(ThreadWorker):
    """gunicorn's threaded worker, with JSON error answers and a port that closes on SIGTERM."""

    def init_process(self) -> None:
        util.write_error = json_error  # gunicorn writes every error of its own through this function
        super().init_process()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:  # shutting down: close this worker's copy of the listening
            for listener in self.sockets:  # socket, so the port refuses new connections at once
                listener.close()           # (gunicorn only stops calling accept; the kernel kept queueing)


class Server(BaseApplication):
    """gunicorn with its configuration given here, not read from files or the command line."""

    def __init__(self, settings: ServerSettings, port: int, host: str = "0.0.0.0") -> None:
        self.settings = settings
        self.options = {
            "bind": f"{host}:{port}",
            "workers": settings.workers,
            "worker_class": Worker,
            "threads": THREADS,
            # gthread's watchdog: a worker whose main loop (not a request thread) is stuck this long is
            # killed. Requests have their own deadline (settings.timeout, in the app).
            "timeout": max(int(settings.timeout), WATCHDOG_SECONDS),
            "graceful_timeout": GRACEFUL_SECONDS,
            "keepalive": 5,
            "accesslog": None,  # the app logs one line per invocation itself
            "post_fork": _limit_threads,
            "control_socket_disable": True,  # gunicorn 26's admin socket: unused, and one path per user
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from gtsrb.serve.app import create_app  # imports MXNet: only in the worker

        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)
        return create_app(self.settings)


def _limit_threads(server, worker) -> None:
    """Split the CPUs between workers, so N workers do not run N x CPUs OpenMP threads. Always: a value
    inherited from a process that imported the train or evaluate package (`make serve` resolves the
    model on the host first) is one thread per core for a single process, not for N workers."""
    threads = max(1, len(os.sched_getaffinity(0)) // max(1, server.cfg.workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(threads))
    gpus = gpu_count()
    if gpus and not os.environ.get(protocol.ENV_WORKERS):  # one worker per GPU: each its own device
        os.environ["CUDA_VISIBLE_DEVICES"] = str(worker.age % gpus)


def serve(settings: ServerSettings, port: int, host: str = "0.0.0.0") -> None:
    """Run the server until SIGTERM/SIGINT."""
    Server(settings, port, host).run()
