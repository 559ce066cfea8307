"""Train in one of our images on this machine exactly as SageMaker runs a training job.

Writes the /opt/ml tree SageMaker gives a job (input/config/*.json, input/data/<channel>, model,
output, checkpoints) under --root, runs `docker run IMAGE train` (the sagemaker-training
toolkit's entry point, which runs SAGEMAKER_PROGRAM=train.py) with each part mounted where
SageMaker mounts it, then packs the model folder into model.tar.gz as SageMaker does. The job's
output is also kept in ROOT/job.log (SageMaker's CloudWatch log).

    python containers/train_local.py --image gtsrb-mxnet-gpu:latest --root runs/train-local \\
        --channel train=runs/demo/prepare/train --channel validation=runs/demo/prepare/validation \\
        --hp epochs=3 --gpus all

Used by `make train-local` and tests/containers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError, failure_reason
from pipelines.local.emulated_job import HOST, JobDirs, run_logged, write_job_config

# Written by the job, read back on the host.
MOUNTED = (sagemaker_job.MODEL_DIR, sagemaker_job.OUTPUT_DIR, sagemaker_job.CHECKPOINTS_DIR)


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`key=value` strings -> dict; exit with a clear message on a malformed one."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"train_local: {what} {pair!r} is not key=value")
        result[key] = value
    return result


def write_config(root: Path, channels: dict[str, Path], hps: dict[str, str]) -> None:
    """The job's config files (host algo-1) and the folders the container mounts read-write."""
    write_job_config(JobDirs(root), channels, hps)
    for name in MOUNTED:
        (root / name).mkdir(parents=True, exist_ok=True)


def docker_command(docker: str, image: str, root: Path, channels: dict[str, Path], gpus: str,
                   cpuset: str | None = None) -> list[str]:
    """`docker run` as SageMaker does it: data read-only, no network (weights are baked in); `cpuset`
    limits the CPUs the job sees (e.g. 0-3: an ml.g5.xlarge's 4 vCPUs)."""
    job, opt_ml = JobDirs(root), JobDirs(Path(sagemaker_job.OPT_ML))
    cmd = [docker, "run", "--rm", "--network", "none", "--add-host", f"{HOST}:127.0.0.1", "--shm-size", "2g"]
    if gpus != "none":
        cmd += ["--gpus", gpus]
    if cpuset:
        cmd += ["--cpuset-cpus", cpuset]
    cmd += ["-v", f"{job.config}:{opt_ml.config}:ro"]
    cmd += [arg for name, path in channels.items() for arg in ("-v", f"{path}:{opt_ml.data / name}:ro")]
    cmd += [arg for name in MOUNTED for arg in ("-v", f"{root / name}:{opt_ml.base / name}")]
    return [*cmd, image, "train"]


def main(argv: list[str] | None = None) -> int:
    """Parse, lay out /opt/ml, run the job, pack the model; the job's exit code is ours."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="image to run, e.g. gtsrb-mxnet-gpu:latest")
    parser.add_argument("--root", type=Path, required=True, help="host folder that plays /opt/ml")
    parser.add_argument("--channel", action="append", default=[], help="NAME=DIR (repeat: train, validation)")
    parser.add_argument("--hp", nargs="*", default=[], help="hyperparameters as key=value")
    parser.add_argument("--gpus", default="all", help="docker --gpus value, or none for CPU")
    parser.add_argument("--docker", default="docker", help="docker client to use")
    parser.add_argument("--cpuset-cpus", default=None, help="docker --cpuset-cpus: the CPUs the job may use, e.g. 0-3")
    args = parser.parse_args(argv)

    channels = {name: Path(path).resolve() for name, path in parse_pairs(args.channel, "channel").items()}
    for name, path in channels.items():
        if not path.is_dir():
            sys.exit(f"train_local: channel {name}: {path} is not a folder (run the prepare step first)")
    root = args.root.resolve()
    job = JobDirs(root)
    job.start_fresh()  # no model or failure file from an earlier run; checkpoints stay (resume)
    write_config(root, channels, parse_pairs(args.hp, "hyperparameter"))

    cmd = docker_command(args.docker, args.image, root, channels, args.gpus, args.cpuset_cpus)
    print(">> " + " ".join(cmd), flush=True)
    code = run_logged(cmd, root / "job.log")  # all of it: this is what CloudWatch would show
    if code != 0:
        reason = failure_reason(job.failure_file) or f"exit code {code}"
        print(f"train_local: the training job failed: {reason}", file=sys.stderr)
        if code == 125 and args.gpus != "none":  # docker itself refused: usually no GPU runtime here
            print("train_local: docker could not start the container with --gpus; without NVIDIA GPUs and the "
                  "NVIDIA container toolkit use VARIANT=cpu (make train-local VARIANT=cpu).", file=sys.stderr)
        return code or 1
    try:
        archive = job.archive_model()  # what SageMaker uploads
    except StepError as err:
        print(f"train_local: {err}", file=sys.stderr)
        return 1
    print(f">> model: {archive} (checkpoints: {job.checkpoints})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
