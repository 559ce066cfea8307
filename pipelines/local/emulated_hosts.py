"""A training job on several emulated instances: one process per host on 127.0.0.1.

SageMaker gives each instance of a job its own /opt/ml, a resourceconfig.json naming every host
(`algo-1`, `algo-2`, ...) and the current one, and a name service that maps `algo-N` to its
address. Here each host gets its own /opt/ml below the job's (the first host's is the job's
own, so the model lands where one host would put it), the name service is replaced by
DMLC_PS_ROOT_URI=127.0.0.1 with a free port, the network interface is `lo`, and every host's
checkpoint folder is the first host's: on SageMaker they are one S3 prefix (checkpoint_s3_uri),
downloaded to every host when a job (re)starts. The hosts share this machine's cores: each gets
its share as OMP_NUM_THREADS (one instance alone would take one thread per core).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import openmp_threads
from gtsrb.common.failure import StepError, failure_reason
from pipelines.local.emulated_job import JobDirs, run_step_job, training_env, write_job_config

LOOPBACK = "127.0.0.1"
PORT_RANGE = (20000, 32000)  # the scheduler's port, as SageMaker's 8000: outside the ephemeral range
EXTRA_WAIT = 30.0  # seconds the other hosts get after the first ends (they exit within peer_timeout of it)


def host_names(count: int) -> list[str]:
    """SageMaker's names for the instances of a job: algo-1 .. algo-N."""
    return [f"algo-{i + 1}" for i in range(count)]


def free_port() -> int:
    """A free port and its free neighbour (the scheduler's and the watch's), below Linux's ephemeral
    range (32768-60999): ps-lite's servers and workers bind ephemeral ports and could take them."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(*PORT_RANGE)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind((LOOPBACK, port))
                second.bind((LOOPBACK, port + 1))
            return port
        except OSError:
            continue
    raise StepError(f"no two free neighbouring ports in {PORT_RANGE} on 127.0.0.1 for the emulated scheduler.")


@dataclass(frozen=True)
class Host:
    """One emulated instance: its name, its /opt/ml and its environment."""

    name: str
    job: JobDirs
    env: dict[str, str]


def prepare_hosts(job: JobDirs, count: int, channels: dict[str, Path], hps: dict[str, str], num_gpus: int) -> list[Host]:
    """Every host's /opt/ml (config files, the shared checkpoint folder) and environment."""
    names, port = host_names(count), free_port()
    hosts = []
    for name in names:
        own = job if name == names[0] else JobDirs(job.base / "hosts" / name)
        own.start_fresh()
        write_job_config(own, channels, hps, host=name, interface="lo", hosts=names)
        if own is not job and not own.checkpoints.is_symlink():
            job.checkpoints.mkdir(parents=True, exist_ok=True)
            own.checkpoints.symlink_to(job.checkpoints.resolve(), target_is_directory=True)  # one S3 prefix
        env = {**training_env(own, channels, hps, num_gpus), "SM_HOSTS": json.dumps(names), "SM_CURRENT_HOST": name,
               "DMLC_PS_ROOT_URI": LOOPBACK, "DMLC_PS_ROOT_PORT": str(port),
               openmp_threads.VARIABLE: str(max(1, openmp_threads.physical_cores() // count))}  # the hosts share this machine's cores
        hosts.append(Host(name, own, env))
    return hosts


def start_other_host(host: Host, argv: list[str], log_file: Path) -> subprocess.Popen:
    """An instance other than the first: its output in its own log, as CloudWatch keeps one stream per host."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as out:
        return subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1", **host.env},
                                stdout=out, stderr=subprocess.STDOUT)


def run_hosts(step: str, hosts: list[Host], argv: list[str], log_file: Path) -> None:
    """Run the job on every host; the first on the console. StepError with the first host's failure
    sentence (or the other host's) when any ends non-zero; no process is left behind."""
    others = {h.name: start_other_host(h, argv, log_file.with_name(f"{log_file.stem}-{h.name}.log")) for h in hosts[1:]}
    try:
        run_step_job(step, argv, log_file, hosts[0].job.failure_file, hosts[0].env)
        deadline = time.monotonic() + EXTRA_WAIT
        for name, proc in others.items():
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            if code != 0:
                host = next(h for h in hosts if h.name == name)
                reason = failure_reason(host.job.failure_file) or f"exit code {code}"
                raise StepError(f"{step} failed on host {name}: {reason} (log: {log_file.with_name(f'{log_file.stem}-{name}.log')})")
    except subprocess.TimeoutExpired as err:
        raise StepError(f"{step}: a host did not end within {EXTRA_WAIT:g} s of the first; it was stopped.") from err
    finally:
        for proc in others.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
