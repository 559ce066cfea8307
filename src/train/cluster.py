"""The hosts of a training job and the ps-lite roles each one runs.

SageMaker describes a job's instances in /opt/ml/input/config/resourceconfig.json (`hosts`,
`current_host`, `network_interface_name`); the toolkit copies hosts and the current host into
SM_HOSTS and SM_CURRENT_HOST. With one host nothing here is used. With several, MXNet's parameter
server (ps-lite, built into both pinned wheels) runs as SageMaker's own MXNet containers start it:
a scheduler on the first host (sorted by name, as SageMaker's `algo-1` first), a server and a
worker on every host, all told where the scheduler listens through DMLC_* variables.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError

ROLE_ENV = "DMLC_ROLE"  # set in the worker process: it trains with a dist kvstore
SCHEDULER_PORT = 8000  # DMLC_PS_ROOT_PORT on SageMaker (the MXNet containers' default); the watch port is the next
RESOLVE_SECONDS = 60.0  # the toolkit already waited for DNS; this only covers a slow resolver


@dataclass(frozen=True)
class Cluster:
    """The job's hosts as SageMaker names them, and which one this is."""

    hosts: tuple[str, ...]
    current: str
    interface: str = ""  # the network interface SageMaker names (ethwe on SageMaker, eth0 in local mode)

    @classmethod
    def from_environment(cls) -> Cluster:
        """resourceconfig.json if the job has one, else SM_HOSTS / SM_CURRENT_HOST, else one host."""
        config = sagemaker_job.base_dir() / sagemaker_job.INPUT_DIR / "config" / "resourceconfig.json"
        if config.is_file():
            return cls._from_resourceconfig(config)
        hosts = json.loads(os.environ.get("SM_HOSTS", '["localhost"]'))
        return cls(tuple(sorted(hosts)), os.environ.get("SM_CURRENT_HOST", hosts[0]))

    @classmethod
    def _from_resourceconfig(cls, path: Path) -> Cluster:
        try:
            values = json.loads(path.read_text())
            cluster = cls(tuple(sorted(values["hosts"])), values["current_host"], values.get("network_interface_name", ""))
        except (ValueError, KeyError, TypeError) as err:
            raise StepError(f"{path} is not a SageMaker resource configuration ({err}).") from err
        if cluster.current not in cluster.hosts:
            raise StepError(f"{path}: current_host {cluster.current!r} is not one of the hosts {list(cluster.hosts)}.")
        return cluster

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> str:
        """The first host: scheduler, watch, and the one that speaks (model, checkpoints, failure file)."""
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.current == self.leader

    def scheduler_address(self) -> tuple[str, int]:
        """(IP, port) of the scheduler: DMLC_PS_ROOT_URI/PORT when given (the local twin), else the
        leader's name resolved by DNS (SageMaker maps algo-N) and port 8000."""
        port = int(os.environ.get("DMLC_PS_ROOT_PORT", SCHEDULER_PORT))
        if os.environ.get("DMLC_PS_ROOT_URI"):
            return os.environ["DMLC_PS_ROOT_URI"], port
        return resolve(self.leader), port

    def role_env(self, role: str) -> dict[str, str]:
        """The DMLC_* variables of one ps-lite role on this host."""
        uri, port = self.scheduler_address()
        env = {
            ROLE_ENV: role,
            "DMLC_PS_ROOT_URI": uri,
            "DMLC_PS_ROOT_PORT": str(port),
            "DMLC_NUM_SERVER": str(self.size),
            "DMLC_NUM_WORKER": str(self.size),
            "PS_VERBOSE": os.environ.get("PS_VERBOSE", "0"),
        }
        if self.interface:
            env["DMLC_INTERFACE"] = self.interface  # ps-lite binds to this interface's address
        return env


def resolve(host: str, seconds: float = RESOLVE_SECONDS) -> str:
    """The IPv4 address of `host`, retrying for `seconds` (a fresh job's DNS may lag)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as err:
            if time.monotonic() > deadline:
                raise StepError(f"the first host {host} cannot be resolved by DNS ({err}); is it part of this job?") from err
            time.sleep(1.0)


def is_worker() -> bool:
    """True in the worker process of a multi-host job (the launcher set DMLC_ROLE=worker)."""
    return os.environ.get(ROLE_ENV) == "worker"
