"""Helpers of the SageMaker pipeline tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import contract

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE_TAG = "abc1234"
REPO_ROOT = Path(__file__).resolve().parents[2]


def steps_by_name(definition: dict) -> dict[str, dict]:
    """Every step of a definition, including those inside conditions, by name."""
    found: dict[str, dict] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


@dataclass(frozen=True)
class Moto:
    """A running moto server and a SageMaker-trusted role in its IAM."""

    endpoint: str
    role: str

    def client(self, service: str):
        """A boto3 client of the server."""
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)


def evaluation_report(accuracy: float) -> dict:
    """A small evaluation.json in the evaluate step's format."""
    return {
        "multiclass_classification_metrics": {
            "accuracy": {"value": accuracy, "standard_deviation": 0.01},
            "accuracy_best_constant_classifier": {"value": 0.05, "standard_deviation": 0.01},
            "weighted_f1": {"value": 0.9, "standard_deviation": 0.02},
            "confusion_matrix": {"0": {"0": 3}},
        },
        "evaluation_details": {"macro_f1": 0.85, "records": 120, "top_confused_pairs": []},
    }


def fake_submission(folder: Path, accuracy: float = 0.93, seconds: float = 42.5):
    """A registry Submission of files in `folder` (a two-epoch history, hyperparameters, a report)."""
    from pipelines.local import mlflow_registry as registry

    model_dir, evaluation = folder / "model", folder / "evaluation"
    model_dir.mkdir()
    evaluation.mkdir()
    history = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.4, "val_acc": 0.5},
               {"epoch": 2, "train_loss": 1.0, "train_acc": 0.7, "val_acc": 0.8}]
    (model_dir / contract.HISTORY_FILE).write_text(json.dumps(history))
    (model_dir / contract.HYPERPARAMETERS_FILE).write_text(json.dumps({"epochs": 2, "lr": 0.1, "warmup_epochs": 1.0}))
    (evaluation / contract.EVALUATION_FILE).write_text(json.dumps(evaluation_report(accuracy)))
    (evaluation / contract.PER_CLASS_FILE).write_text("class_id\n0\n")
    (folder / "manifest.json").write_text(json.dumps({"input_sha256": "feed" * 16, "class_names": ["cat", "dog", "fox"]}))
    (folder / contract.MODEL_ARCHIVE).write_bytes(b"not really a tar")
    return registry.Submission(folder / contract.MODEL_ARCHIVE, model_dir, evaluation, folder / "manifest.json",
                               {"threshold": "0.9"}, tags={"run_name": "fake-run"}, seconds=seconds)


def answers_200(url: str, seconds: float, alive: Callable[[], bool]) -> bool:
    """Poll GET `url` until it answers 200 (True); False at the deadline or once `alive()` is False."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:  # not listening yet, or an error status while it starts
            time.sleep(0.5)
    return False
