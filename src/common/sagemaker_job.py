"""What SageMaker gives a job, as the steps inside the images see it: the /opt/ml tree and the
hyperparameters on the command line.

Defined once here; the host-side emulator (pipelines.local.emulated_job) and the tests build the same
tree from these names. SAGEMAKER_BASE_DIR moves /opt/ml, as the sagemaker-training toolkit does.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

OPT_ML = PurePosixPath("/opt/ml")
BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
# The parts of /opt/ml a training job reads or writes.
MODEL_DIR = "model"  # SM_MODEL_DIR: packed into model.tar.gz after the job
OUTPUT_DIR = "output"  # the failure file, SM_OUTPUT_DATA_DIR
CHECKPOINTS_DIR = "checkpoints"  # synced with checkpoint_s3_uri (spot training resumes from it)
INPUT_DIR = "input"  # input/config/*.json and input/data/<channel>
# The file whose first 1 KiB SageMaker shows as the job's FailureReason (training) or
# ExitMessage (processing), below OUTPUT_DIR.
TRAINING_FAILURE_FILE = "failure"
PROCESSING_FAILURE_FILE = "message"
# SageMaker's own keys among the hyperparameters (never ours).
SAGEMAKER_KEY_PREFIX = "sagemaker_"
# Booleans as strings: SageMaker passes Python's True/False; JSON and the Makefile say true/false.
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def base_dir() -> Path:
    """SageMaker's /opt/ml, moved with SAGEMAKER_BASE_DIR as the training toolkit does."""
    return Path(os.environ.get(BASE_DIR_ENV, str(OPT_ML)))


def hyperparameters_to_args(hps: dict[str, str]) -> list[str]:
    """`--key value` pairs, as the sagemaker-training toolkit passes hyperparameters to the script
    (in key order, as it does)."""
    return [item for key, value in sorted(hps.items()) for item in (f"--{key}", value)]


def args_to_hyperparameters(args: list[str]) -> dict[str, str]:
    """`--key value` pairs back into a dict (the inverse of hyperparameters_to_args); SageMaker's
    own `sagemaker_*` keys are dropped. ValueError names a stray argument."""
    if len(args) % 2 or not all(key.startswith("--") for key in args[::2]):
        stray = next((k for k in args[::2] if not k.startswith("--")), args[-1] if args else "")
        raise ValueError(f"cannot read argument {stray!r}: hyperparameters are given as `--key value`.")
    pairs = {key[2:]: value for key, value in zip(args[::2], args[1::2], strict=True)}
    return {k: v for k, v in pairs.items() if not k.startswith(SAGEMAKER_KEY_PREFIX)}


def parse_bool(text: object) -> bool:
    """A bool, or a string that spells one (True/False, true/false, 1/0); ValueError otherwise."""
    if isinstance(text, bool):
        return text
    value = _BOOLEANS.get(str(text).strip().lower())
    if value is None:
        raise ValueError("expected True or False")
    return value
