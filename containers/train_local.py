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
import json
import shutil
import subprocess
import sys
from pathlib import Path

from gtsrb.common.model_io import archive_model

HOST = "algo-1"  # SageMaker's name for the first (here: only) instance
MOUNTED = ("model", "output", "checkpoints")  # written by the job, read back on the host


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
    """The three JSON files the toolkit reads from /opt/ml/input/config (all values strings)."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    resources = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "eth0"}
    (config / "resourceconfig.json").write_text(json.dumps(resources, indent=2))
    data = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"} for name in channels}
    (config / "inputdataconfig.json").write_text(json.dumps(data, indent=2))
    for name in MOUNTED:
        (root / name).mkdir(parents=True, exist_ok=True)


def docker_command(docker: str, image: str, root: Path, channels: dict[str, Path], gpus: str) -> list[str]:
    """`docker run` as SageMaker does it: data read-only, no network (weights are baked in)."""
    cmd = [docker, "run", "--rm", "--network", "none", "--add-host", f"{HOST}:127.0.0.1", "--shm-size", "2g"]
    if gpus != "none":
        cmd += ["--gpus", gpus]
    cmd += ["-v", f"{root / 'input' / 'config'}:/opt/ml/input/config:ro"]
    cmd += [arg for name, path in channels.items() for arg in ("-v", f"{path}:/opt/ml/input/data/{name}:ro")]
    cmd += [arg for name in MOUNTED for arg in ("-v", f"{root / name}:/opt/ml/{name}")]
    return [*cmd, image, "train"]


def run_job(cmd: list[str], log_path: Path) -> int:
    """Run the job, streaming its output to the terminal and to log_path; return its exit code."""
    out = getattr(sys.stdout, "buffer", None)
    with log_path.open("wb") as log, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        while chunk := proc.stdout.read1(65536):
            log.write(chunk)
            out.write(chunk) if out else sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Parse, lay out /opt/ml, run the job, pack the model; the job's exit code is ours."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="image to run, e.g. gtsrb-mxnet-gpu:latest")
    parser.add_argument("--root", type=Path, required=True, help="host folder that plays /opt/ml")
    parser.add_argument("--channel", action="append", default=[], help="NAME=DIR (repeat: train, validation)")
    parser.add_argument("--hp", nargs="*", default=[], help="hyperparameters as key=value")
    parser.add_argument("--gpus", default="all", help="docker --gpus value, or none for CPU")
    parser.add_argument("--docker", default="docker", help="docker client to use")
    args = parser.parse_args(argv)

    channels = {name: Path(path).resolve() for name, path in parse_pairs(args.channel, "channel").items()}
    for name, path in channels.items():
        if not path.is_dir():
            sys.exit(f"train_local: channel {name}: {path} is not a folder (run the prepare step first)")
    root = args.root.resolve()
    # A fresh job: no model or failure file from an earlier run; checkpoints stay (resume).
    shutil.rmtree(root / "model", ignore_errors=True)
    shutil.rmtree(root / "output", ignore_errors=True)
    (root / "model.tar.gz").unlink(missing_ok=True)
    write_config(root, channels, parse_pairs(args.hp, "hyperparameter"))

    cmd = docker_command(args.docker, args.image, root, channels, args.gpus)
    print(">> " + " ".join(cmd), flush=True)
    code = run_job(cmd, root / "job.log")
    failure = root / "output" / "failure"
    if code != 0:
        # The failure file starts with the one-sentence reason (then the traceback).
        reason = failure.read_text(errors="replace").split("\n\n")[0].strip() if failure.is_file() else f"exit code {code}"
        print(f"train_local: the training job failed: {reason}", file=sys.stderr)
        if code == 125 and args.gpus != "none":  # docker itself refused: usually no GPU runtime here
            print("train_local: docker could not start the container with --gpus; without NVIDIA GPUs and the "
                  "NVIDIA container toolkit use VARIANT=cpu (make train-local VARIANT=cpu).", file=sys.stderr)
        return code or 1
    archive = archive_model(root / "model", root / "model.tar.gz")  # what SageMaker uploads
    print(f">> model: {archive} (checkpoints: {root / 'checkpoints'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
