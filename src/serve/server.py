"""gunicorn running the Flask app: worker count, timeouts and signals for SageMaker hosting.

gunicorn's master binds the port before any worker starts (connections are accepted at once),
replaces a worker that dies, and on SIGTERM lets workers finish their requests for up to
GRACEFUL_SECONDS (SageMaker sends SIGKILL 30 s after SIGTERM). MXNet is imported only in the
workers, after the fork.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass

from gunicorn.app.base import BaseApplication

from gtsrb.serve import protocol

REALTIME_TIMEOUT_SECONDS = 55  # below SageMaker's 60 s limit for an endpoint invocation
BATCH_TIMEOUT_SECONDS = 590  # below the 600 s a batch transform allows per request
GRACEFUL_SECONDS = 20  # below the 30 s between SageMaker's SIGTERM and SIGKILL
LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s %(message)s"


@dataclass(frozen=True)
class ServerSettings:
    """What every worker needs to know; read from the environment the server sets."""

    model: str  # a model directory or model.tar.gz (registry URIs are resolved before)
    max_payload_mb: float
    batch: bool  # batch transform (SAGEMAKER_BATCH)
    workers: int


def env_flag(name: str) -> bool:
    """A SageMaker boolean environment variable ("true"/"false")."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def gpu_count() -> int:
    """NVIDIA GPUs visible to this container (device files; no MXNet import in the master)."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def worker_count() -> int:
    """SAGEMAKER_MODEL_SERVER_WORKERS, else one per GPU, else one per CPU this process may use."""
    if os.environ.get(protocol.ENV_WORKERS):
        return max(1, int(os.environ[protocol.ENV_WORKERS]))
    return gpu_count() or len(os.sched_getaffinity(0))


def settings_from_env(model: str) -> ServerSettings:
    """The settings of every worker, from SageMaker's environment."""
    return ServerSettings(
        model=model,
        max_payload_mb=float(os.environ.get(protocol.ENV_MAX_PAYLOAD) or protocol.DEFAULT_MAX_PAYLOAD_MB),
        batch=env_flag(protocol.ENV_BATCH),
        workers=worker_count(),
    )


class Server(BaseApplication):
    """gunicorn with its configuration given here, not read from files or the command line."""

    def __init__(self, settings: ServerSettings, port: int, host: str = "0.0.0.0") -> None:
        self.settings = settings
        default_timeout = BATCH_TIMEOUT_SECONDS if settings.batch else REALTIME_TIMEOUT_SECONDS
        self.options = {
            "bind": f"{host}:{port}",
            "workers": settings.workers,
            # One request at a time per worker (one model, inference is CPU-bound), but kept-alive
            # connections (the sync worker closes each one: a TCP handshake per request).
            "worker_class": "gthread",
            "threads": 1,
            "timeout": int(os.environ.get(protocol.ENV_TIMEOUT) or default_timeout),
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
    """Split the CPUs between workers, so N workers do not run N x CPUs OpenMP threads."""
    threads = max(1, len(os.sched_getaffinity(0)) // max(1, server.cfg.workers))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", str(threads))
    gpus = gpu_count()
    if gpus and not os.environ.get(protocol.ENV_WORKERS):  # one worker per GPU: each its own device
        os.environ["CUDA_VISIBLE_DEVICES"] = str(worker.age % gpus)


def serve(settings: ServerSettings, port: int, host: str = "0.0.0.0") -> None:
    """Run the server until SIGTERM/SIGINT."""
    Server(settings, port, host).run()
