"""The local RegisterModel step: MLflow's Model Registry in a SQLite file under WORK.

SageMaker keeps a model package (model.tar.gz, the evaluation report as model metrics, an
approval status) in a model package group. The local twin keeps the same things in MLflow:
one run per registration (hyperparameters as params, per-epoch training metrics with
step=epoch, test metrics, and the report files, data manifest and model.tar.gz as artifacts),
and a model version of the registered model named like the package group, linked to that run
and tagged `approval_status=PendingManualApproval`. Browse it with
`mlflow ui --backend-store-uri sqlite:///<WORK>/mlflow.db`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gtsrb.common import contract
from gtsrb.common.failure import StepError
from gtsrb.evaluate.report import evaluation_metrics as report_metrics
from pipelines import graph

if TYPE_CHECKING:  # mlflow takes ~2 s to import: only the registering command pays for it
    from mlflow import MlflowClient

EXPERIMENT = "gtsrb-local-pipeline"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
APPROVAL_TAG = "approval_status"  # SageMaker's ModelApprovalStatus
# models:/<name>/<version> or models:/<name>@<alias>: MLflow's own URI form, built by model_uri().
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
# Offline and quiet: no telemetry, no "view run at http://..." chatter.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_LOGGING_LEVEL": "WARNING"}


@dataclass(frozen=True)
class Submission:
    """What the pipeline hands the registry about one trained and evaluated model."""

    model_archive: Path  # model.tar.gz, as SageMaker hands it to RegisterModel
    model_dir: Path  # the unpacked model dir (history.json, hyperparameters.json)
    evaluation_dir: Path  # evaluation.json + per-class CSV + PNGs
    manifest_file: Path  # the prepare step's manifest.json
    params: dict[str, str] = field(default_factory=dict)  # pipeline parameters + hyperparameters
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Registered:
    """The model version that was created."""

    model_name: str
    version: str
    run_id: str
    source: str
    tracking_uri: str


def tracking_uri(work: str | Path) -> str:
    """The SQLite store under WORK, as an absolute URI (MLflow resolves relative ones from cwd)."""
    return f"sqlite:///{(Path(work) / DB_FILE).resolve()}"


def history_metrics(history: list[dict]) -> list[tuple[str, float, int]]:
    """(name, value, epoch) of every numeric field of every history.json row but the epoch itself."""
    rows = []
    for row in history:
        epoch = int(row.get("epoch", len(rows)))
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((name, float(value), epoch))
    return rows


def register(work: str | Path, submission: Submission, model_name: str = graph.MODEL_PACKAGE_GROUP) -> Registered:
    """Log the run, then create a model version pending manual approval; return what was created."""
    client = open_client(work)
    run_id = log_run(client, work, submission)
    source = f"{client.get_run(run_id).info.artifact_uri}/model/{contract.MODEL_ARCHIVE}"
    _ensure_registered_model(client, model_name)
    version = client.create_model_version(
        model_name,
        source=source,
        run_id=run_id,
        tags={APPROVAL_TAG: graph.APPROVAL_STATUS, **_version_tags(submission)},
        description=submission.description,
        await_creation_for=0,  # a SQLite store creates versions synchronously
    )
    return Registered(model_name, str(version.version), run_id, source, tracking_uri(work))


def open_client(work: str | Path) -> MlflowClient:
    """An MlflowClient on WORK's SQLite store (created on first use), offline and quiet."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    # MLflow 3.17's own SQLAlchemy usage warns on every new store; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*noload.*", module="mlflow")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    Path(work).mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(work)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def log_run(client: MlflowClient, work: str | Path, submission: Submission) -> str:
    """One finished MLflow run with params, per-epoch and test metrics, and the artifacts."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(_experiment_id(client, work), run_name=submission.tags.get("run_name"))
    run_id, now = run.info.run_id, int(time.time() * 1000)
    history_file = submission.model_dir / contract.HISTORY_FILE
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    report = json.loads((submission.evaluation_dir / contract.EVALUATION_FILE).read_text())
    metrics = [Metric(k, v, now, e) for k, v, e in history_metrics(history)]
    metrics += [Metric(k, v, now, 0) for k, v in report_metrics(report).items()]
    params = [Param(k, str(v)[:6000]) for k, v in sorted(submission.params.items())]
    tags = [RunTag(k, str(v)) for k, v in submission.tags.items()]
    for start in range(0, max(len(metrics), len(params), len(tags)), 500):  # log_batch's limits
        client.log_batch(run_id, metrics[start : start + 500], params[start : start + 100], tags[start : start + 100])
    client.log_artifact(run_id, str(submission.model_archive), "model")
    client.log_artifacts(run_id, str(submission.evaluation_dir), "evaluation")
    client.log_artifact(run_id, str(submission.manifest_file), "data")
    client.set_terminated(run_id)
    return run_id


def _experiment_id(client: MlflowClient, work: str | Path) -> str:
    """The pipeline's experiment, its artifacts in WORK/mlartifacts (not ./mlruns of the cwd)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = (Path(work) / ARTIFACTS_DIR).resolve().as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model (the model package group) unless it exists."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="GTSRB traffic-sign classifiers (43 classes).")


def _version_tags(submission: Submission) -> dict[str, str]:
    """The headline test metrics as version tags, so the registry list shows them without the run."""
    report = json.loads((submission.evaluation_dir / contract.EVALUATION_FILE).read_text())
    metrics = report_metrics(report)
    wanted = ("test_accuracy", "test_macro_f1", "test_weighted_f1", "test_records")
    return {name: f"{metrics[name]:.6g}" for name in wanted if name in metrics}


def find_versions(work: str | Path, model_name: str = graph.MODEL_PACKAGE_GROUP) -> list:
    """Every version of `model_name` in WORK's registry (empty when none or no store yet)."""
    if not (Path(work) / DB_FILE).is_file():
        return []
    return list(open_client(work).search_model_versions(f"name = '{model_name}'"))


def model_uri(model_name: str, version: str | None = None, alias: str | None = None) -> str:
    """The registry URI of a version: models:/<name>/<version>, or models:/<name>@<alias>."""
    return f"models:/{model_name}/{version}" if version else f"models:/{model_name}@{alias}"


def version_source(work: str | Path, model_name: str, version: str | None, alias: str | None) -> str:
    """The local model.tar.gz path of a registered version (by number or alias) in WORK's registry."""
    from mlflow.exceptions import MlflowException

    label = model_uri(model_name, version, alias)
    if not (Path(work) / DB_FILE).is_file():
        raise StepError(f"{label}: no local registry at {Path(work) / DB_FILE}; run `make demo` (or pass WORK=).")
    client = open_client(work)
    try:
        found = client.get_model_version(model_name, version) if version else client.get_model_version_by_alias(model_name, alias)
    except MlflowException as err:
        raise StepError(f"{label}: not in the registry at {work} ({err.message.splitlines()[0]}).") from None
    return found.source.removeprefix("file://")


def resolve(source: str | Path, work: str | Path) -> Path:
    """The local model directory or model.tar.gz of `source`: a path as is, a models:/ URI looked up in WORK.

    The model server in the images knows paths only; `make serve` and `make predict` resolve
    registry URIs here, on the host, and hand the server the path.
    """
    text = str(source)
    if not text.startswith("models:/"):
        return Path(text)
    match = MODEL_URI.match(text)
    if not match:
        raise StepError(f"{text}: not a registry URI; use models:/<name>/<version> or models:/<name>@<alias>.")
    return Path(version_source(work, match["name"], match["version"], match["alias"]))
