"""The GPU run book's summary (containers/gpu_target.py) reads the train step's real epoch lines and
the evaluation report (the GPU run itself needs a GPU: docs/gpu-runbook.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.train.epoch_log import epoch_line
from testkit.containers import CONTAINERS, load_script


def load_gpu_target():
    spec = importlib.util.spec_from_file_location("gpu_target", CONTAINERS / "gpu_target.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reads_epoch_lines_and_accuracy(tmp_path: Path) -> None:
    gpu_target = load_gpu_target()
    lines = [epoch_line({"epoch": e, "train_loss": 0.5, "train_acc": 0.9, "val_acc": 0.99, "lr": 0.01,
                         "img_per_s": rate, "seconds": seconds}) for e, rate, seconds in ((1, 2000.0, 20.0), (2, 2400.0, 16.0))]
    (tmp_path / "job.log").write_text("event=start model=resnet50_v1d\n" + "\n".join(lines) + "\n")
    report = {contract.QUALITY_METRICS_KEY: {"accuracy": {"value": 0.9981, "standard_deviation": "NaN"}}}
    (tmp_path / "evaluation.json").write_text(json.dumps(report))
    numbers = gpu_target.summary(tmp_path / "job.log", tmp_path / "evaluation.json", job_seconds=420.0)
    assert numbers == {"epochs": 2, "img_per_s": 2200.0, "epoch_seconds": 18.0, "job_seconds": 420.0, "test_accuracy": 0.9981}
    assert gpu_target.verdict(numbers) == []
    assert gpu_target.verdict({**numbers, "test_accuracy": 0.99, "job_seconds": 700.0}) == [
        "test accuracy 0.9900 < 0.997", "job time 700 s > 600 s"]


def test_the_job_gets_one_gpu_four_cpus_and_a_fresh_folder(tmp_path: Path) -> None:
    gpu_target = load_gpu_target()
    root = tmp_path / "train"
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "state.json").write_text("{}")  # a finished job's: it would be resumed
    cmd = gpu_target.train_command("img:1", "docker", gpu_target.fresh(root), tmp_path / "prepare")
    assert root.is_dir() and not any(root.iterdir())
    assert cmd[cmd.index("--gpus") + 1] == "device=0" and cmd[cmd.index("--cpuset-cpus") + 1] == "0-3"
    train_local = load_script("train_local")
    docker = train_local.docker_command("docker", "img:1", root, {}, "device=0", "0-3")
    assert docker[docker.index("--gpus") + 1] == "device=0" and docker[docker.index("--cpuset-cpus") + 1] == "0-3"


def test_machine_facts_and_cpu_counts() -> None:
    gpu_target = load_gpu_target()
    assert gpu_target.gpu_facts(lambda: "NVIDIA A10G, 535.183.01\nNVIDIA A10G, 535.183.01\n") == ("NVIDIA A10G", "535.183.01")
    assert [gpu_target.cpuset_size(c) for c in ("0-3", "0,2", "0-1,4-5")] == [4, 2, 4]
    assert gpu_target.check_host_cpus("0-3", host_cpus=8) == 4
    with pytest.raises(SystemExit, match="this host has 2 CPUs, the target machine 4"):
        gpu_target.check_host_cpus("0-3", host_cpus=2)
