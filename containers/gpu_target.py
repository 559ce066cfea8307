"""Verify the GPU target on a machine with a supported GPU, in one command (`make gpu-target DATA=...`).

prepare (host venv) -> train in the GPU image exactly as SageMaker would (containers/train_local.py,
GPU defaults) -> evaluate on the official test split; then one summary: the machine (GPU name,
driver, CPUs the job saw), training images/s, epoch time, job time, test accuracy, each against the
target (docs/gpu-runbook.md). Exits 1 when a step fails or a target is missed.

The target is one A10G with 4 vCPUs (ml.g5.xlarge), so the job gets exactly that whatever the host
has: one GPU (`--gpus device=0`), CPUs 0-3 (`--cpuset-cpus`: MXNet sizes its decode threads from the
CPUs it sees), and a fresh job folder (a second run must train again, not resume the finished job).

    python containers/gpu_target.py --data ~/GTSRB --work runs/gpu-target --image gtsrb-mxnet-gpu:latest
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gtsrb.common import contract
from gtsrb.common.preprocessing import DEFAULT_IMAGE_SIZE

TARGET_ACCURACY = 0.997  # on the official GTSRB test split (12,630 images)
TARGET_JOB_SECONDS = 600  # the training job, start to model.tar.gz, on one A10G (ml.g5.xlarge)
TARGET_GPUS = "device=0"  # docker --gpus: one device, as on ml.g5.xlarge
TARGET_CPUSET = "0-3"  # docker --cpuset-cpus: ml.g5.xlarge's 4 vCPUs
_EPOCH = re.compile(r"^epoch=(\d+) .*\bimg_per_s=([0-9.e+]+) seconds=([0-9.e+]+)")


def step(name: str, cmd: list[str]) -> float:
    """Run one step, streaming its output; return its wall time; exit 1 naming it if it fails."""
    print(f">> {name}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"gpu_target: the {name} step failed (its output is above).")
    return time.monotonic() - start


def cpuset_size(cpuset: str) -> int:
    """How many CPUs a --cpuset-cpus value names (0-3 -> 4, 0,2 -> 2)."""
    count = 0
    for part in cpuset.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def check_host_cpus(cpuset: str, host_cpus: int | None = None) -> int:
    """The CPU count the job gets; exit with a sentence when this host has fewer than the cpuset names."""
    needed, have = cpuset_size(cpuset), host_cpus if host_cpus is not None else os.cpu_count() or 1
    if have < needed:
        sys.exit(f"gpu_target: this host has {have} CPUs, the target machine {needed} (--cpuset-cpus {cpuset}): "
                 "the loader would be slower than on ml.g5.xlarge; use a machine with at least as many.")
    return needed


def gpu_facts(query: Callable[[], str] | None = None) -> tuple[str, str]:
    """(name, driver version) of GPU 0 from nvidia-smi; a sentence when it is missing."""
    try:
        text = query() if query else subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader", "--id=0"],
            capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"gpu_target: nvidia-smi cannot describe GPU 0 ({err}); this needs a machine with an NVIDIA GPU.")
    name, _, driver = text.strip().splitlines()[0].rpartition(",")
    return name.strip(), driver.strip()


def fresh(root: Path) -> Path:
    """An empty job folder: no checkpoint (a finished job would be resumed), model or log of an earlier run."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def train_command(image: str, docker: str, root: Path, prep: Path) -> list[str]:
    """train_local.py on one GPU and the target's CPUs."""
    return [sys.executable, str(Path(__file__).with_name("train_local.py")), "--docker", docker, "--image", image,
            "--root", str(root), "--gpus", TARGET_GPUS, "--cpuset-cpus", TARGET_CPUSET,
            "--channel", f"train={prep / contract.TRAIN_CHANNEL}",
            "--channel", f"validation={prep / contract.VALIDATION_CHANNEL}"]


def summary(job_log: Path, evaluation: Path, job_seconds: float) -> dict[str, float]:
    """The numbers the run book asks for, read from the job's log and evaluation.json."""
    epochs = [m.groups() for m in map(_EPOCH.match, job_log.read_text().splitlines()) if m]
    if not epochs:
        raise SystemExit(f"gpu_target: {job_log} holds no epoch line; did training run?")
    report = json.loads(evaluation.read_text())
    return {
        "epochs": len(epochs),
        "img_per_s": sum(float(rate) for _, rate, _ in epochs) / len(epochs),
        "epoch_seconds": sum(float(seconds) for _, _, seconds in epochs) / len(epochs),
        "job_seconds": job_seconds,
        "test_accuracy": float(report[contract.QUALITY_METRICS_KEY]["accuracy"]["value"]),
    }


def verdict(numbers: dict[str, float]) -> list[str]:
    """The targets missed (empty when both are met)."""
    missed = []
    if numbers["test_accuracy"] < TARGET_ACCURACY:
        missed.append(f"test accuracy {numbers['test_accuracy']:.4f} < {TARGET_ACCURACY}")
    if numbers["job_seconds"] > TARGET_JOB_SECONDS:
        missed.append(f"job time {numbers['job_seconds']:.0f} s > {TARGET_JOB_SECONDS} s")
    return missed


def main(argv: list[str] | None = None) -> int:
    """prepare -> train-local (GPU) -> evaluate -> summary line; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a real GTSRB download (official or Kaggle layout)")
    parser.add_argument("--work", type=Path, default=Path("runs/gpu-target"))
    parser.add_argument("--image", required=True, help="the GPU training image, e.g. gtsrb-mxnet-gpu:latest")
    parser.add_argument("--docker", default="docker")
    args = parser.parse_args(argv)
    prep, root = args.work / "prepare", args.work / "train"
    cpus = check_host_cpus(TARGET_CPUSET)
    gpu, driver = gpu_facts()
    py = sys.executable
    step("prepare", [py, "-m", "gtsrb.prepare", "--input", str(args.data), "--output", str(prep),
                     "--image-size", str(DEFAULT_IMAGE_SIZE)])
    job_seconds = step("train", train_command(args.image, args.docker, fresh(root), prep))
    step("evaluate", [py, "-m", "gtsrb.evaluate", "--model", str(root / "model.tar.gz"),
                      "--test", str(prep / contract.SPLITS[2]), "--output", str(args.work / "evaluation")])
    numbers = summary(root / "job.log", args.work / "evaluation" / contract.EVALUATION_FILE, job_seconds)
    print(f"gpu-target machine gpu={gpu!r} driver={driver} gpus=1 cpus={cpus}", flush=True)
    print("gpu-target " + " ".join(f"{k}={v:.4g}" for k, v in numbers.items()), flush=True)
    missed = verdict(numbers)
    print("gpu-target: " + ("met" if not missed else "MISSED: " + "; ".join(missed)), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
