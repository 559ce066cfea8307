"""Where the train step finds its inputs and puts its outputs: SageMaker's SM_* variables,
overridden by CLI flags so that the same script runs by hand.

| what            | SageMaker                        | by hand                |
| --------------- | -------------------------------- | ---------------------- |
| train data      | SM_CHANNEL_TRAIN                 | --train DIR            |
| validation data | SM_CHANNEL_VALIDATION            | --validation DIR       |
| weights file    | SM_CHANNEL_PRETRAINED (optional) | --pretrained-dir DIR   |
| model output    | SM_MODEL_DIR                     | --model-dir DIR        |
| checkpoints     | $SAGEMAKER_BASE_DIR/checkpoints  | --checkpoint-dir DIR   |
| GPUs            | SM_NUM_GPUS                      | all MXNet sees         |

The job's hosts (resourceconfig.json, SM_HOSTS) are read by gtsrb.train.cluster.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import contract, cuda, sagemaker_job
from gtsrb.common.failure import StepError
from gtsrb.train.hyperparameters import Hyperparameters


@dataclass(frozen=True)
class Environment:
    """Resolved paths and devices of one training run."""

    train: Path | None
    validation: Path | None
    pretrained: Path | None
    model_dir: Path
    checkpoint_dir: Path
    num_gpus: int


def parse_args(argv: list[str]) -> tuple[Environment, dict[str, str]]:
    """Split argv into the path flags and the `--key value` hyperparameters (strings)."""
    parser = argparse.ArgumentParser(
        prog="gtsrb-train",
        description="Train the GTSRB classifier (SageMaker training contract; flags override SM_* variables).",
        epilog="hyperparameters (--key value): " + ", ".join(f"{k}={v}" for k, v in Hyperparameters().to_dict().items()),
        allow_abbrev=False,  # `--model` is a hyperparameter, not an abbreviation of --model-dir
    )
    parser.add_argument("--train", type=Path, default=_channel(contract.TRAIN_CHANNEL))
    parser.add_argument("--validation", type=Path, default=_channel(contract.VALIDATION_CHANNEL))
    parser.add_argument("--pretrained-dir", type=Path, default=_channel(contract.PRETRAINED_CHANNEL))
    parser.add_argument("--model-dir", type=Path, default=_env_path("SM_MODEL_DIR"))
    parser.add_argument("--checkpoint-dir", type=Path, default=sagemaker_job.base_dir() / sagemaker_job.CHECKPOINTS_DIR)
    parser.add_argument("--num-gpus", type=int, default=None)
    known, rest = parser.parse_known_args(argv)
    if known.model_dir is None:
        raise StepError("no model directory: SM_MODEL_DIR is not set; pass --model-dir DIR when running by hand.")
    env = Environment(known.train, known.validation, known.pretrained_dir, known.model_dir,
                      known.checkpoint_dir, _num_gpus(known.num_gpus))
    try:
        return env, sagemaker_job.args_to_hyperparameters(rest)
    except ValueError as err:
        raise StepError(str(err)) from err


def _env_path(name: str) -> Path | None:
    """An environment variable as a path, if set and not empty."""
    value = os.environ.get(name)
    return Path(value) if value else None


def _channel(name: str) -> Path | None:
    """SM_CHANNEL_<NAME> as a path, if SageMaker gave that channel."""
    return _env_path(f"SM_CHANNEL_{name.upper()}")


def _num_gpus(flag: int | None) -> int:
    """--num-gpus, else SM_NUM_GPUS, else every GPU MXNet sees."""
    if flag is not None:
        return flag
    if os.environ.get("SM_NUM_GPUS"):
        return int(os.environ["SM_NUM_GPUS"])
    return cuda.gpu_count()
