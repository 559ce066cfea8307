"""The parameter server's cost: one training step with dist_sync against one with a local kvstore.

`dist-sync-overhead`: seconds per step of each of two workers (two emulated hosts on 127.0.0.1:
launcher, scheduler, a server per host, the real train step) against one worker alone with the
local kvstore, the same batch per worker (64, the CPU preset's), the same data and network, in one
run. Above 1 is the overhead: the gradient push and pull through the servers, the agreement of
the stop flag, and here also two workers sharing two cores (so this is an upper bound of the
protocol's cost, not a prediction for separate instances; docs/training.md gives the estimate).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.train_loop import write_split
from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from pipelines.local import emulated_hosts, emulated_job
from pipelines.local.emulated_job import JobDirs

RECORDS = 3072  # 24 steps of 2 x 64 per epoch with two workers, 48 of 64 with one
PER_WORKER = 64
HPS = {"preset": "cpu", "epochs": "2", "fit_on_validation": "False", "min_class_share": "0", "peer_timeout": "120"}


def seconds_per_step(model_dir: Path, batch: int) -> float:
    """A step's seconds in the last epoch of the run (the first pays for start-up)."""
    last = json.loads((model_dir / "history.json").read_text())[-1]
    return batch / last["img_per_s"]


def run_job(root: Path, channels: dict[str, Path], hosts: int) -> float:
    """Train with `hosts` emulated hosts (1: the plain one-host path); seconds per step of a worker."""
    batch = PER_WORKER * hosts
    hps = {**HPS, "batch_size": str(batch)}
    job = JobDirs(root / f"job-{hosts}")
    argv = [sys.executable, "-m", "gtsrb.train", *hyperparameters_to_args(hps)]
    log = root / f"train-{hosts}.log"
    if hosts == 1:
        job.start_fresh()
        emulated_job.run_step_job("train", argv, log, job.failure_file, emulated_job.training_env(job, channels, hps, 0))
    else:
        emulated_hosts.run_hosts("train", emulated_hosts.prepare_hosts(job, hosts, channels, hps, 0), argv, log)
    return seconds_per_step(job.model_dir, batch)


def run() -> None:
    """Print the dist-sync-overhead line."""
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        root = Path(tmp)
        side = stored_size(32)
        write_split(root / "train", contract.TRAIN_CHANNEL, RECORDS, side)
        write_split(root / "validation", contract.VALIDATION_CHANNEL, 256, side)
        channels = {contract.TRAIN_CHANNEL: root / "train", contract.VALIDATION_CHANNEL: root / "validation"}
        reference = run_job(root, channels, 1)
        ours = run_job(root, channels, 2)
    report("dist-sync-overhead", ours, reference, "s/step")
