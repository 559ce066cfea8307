"""The local RegisterModel step: MLflow's tracking store and Model Registry, one for every run.

SageMaker keeps a model package (model.tar.gz, the evaluation report as model metrics, an
approval status) in a model package group. The local twin keeps the same things in MLflow:
one run per registration (every resolved hyperparameter as params, the data's hash and the git
commit as tags, per-epoch training metrics with step=epoch and a training-curve PNG, test
metrics, the report files, data manifest and model.tar.gz as artifacts, the model logged as an
MLflow pyfunc), and a model version of the registered model named like the package group,
linked to that run and tagged `approval_status=PendingManualApproval` and `work=<WORK>`.

The store is MLFLOW_TRACKING_URI when set, else `mlflow.db` beside WORK: runs/mlflow.db for
every runs/<name> (make demo's WORK=runs/demo), so the runs of every WORK can be compared in
one UI (`make ui`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import tempfile
import textwrap
import time
import warnings
from contextlib import closing
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
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DATA_HASH_TAG = "data_sha256"  # the prepare step's hash of the raw input (manifest input_sha256)
WORK_TAG = "work"  # the WORK folder that made a version: `make serve` serves that WORK's newest
APPROVAL_TAG = "approval_status"  # SageMaker's ModelApprovalStatus
MAX_TAG_CHARS = 4000  # MLflow keeps tag values up to 5000 characters: a long class list is cut
STEP_KEY_TAG = "step_key"  # the RegisterModel step key of the pipeline run that created the version
RESERVED_ALIASES = ("latest",)  # MLflow refuses these as alias names (and v<N>, a version)
# models:/<name>/<version> or models:/<name>@<alias>: MLflow's own URI form, built by model_uri().
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")
# Offline and quiet: no telemetry, no "view run at http://..." chatter.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_LOGGING_LEVEL": "WARNING",
             "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


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
    seconds: float = 0.0  # what the steps that made this model took: the run's duration


@dataclass(frozen=True)
class Registered:
    """The model version that was created."""

    model_name: str
    version: str
    run_id: str
    source: str  # the logged pyfunc model (models:/m-<id>)
    tracking_uri: str


def tracking_uri(work: str | Path) -> str:
    """MLFLOW_TRACKING_URI, else the SQLite store beside WORK as an absolute URI (MLflow resolves
    relative ones from the cwd)."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{default_db(work)}"


def default_db(work: str | Path) -> Path:
    """The default store's file: mlflow.db in WORK's parent folder (runs/mlflow.db for runs/<name>)."""
    return Path(work).resolve().parent / DB_FILE


def store_exists(work: str | Path) -> bool:
    """Whether WORK's store can hold anything yet (a server or another URI: assumed so)."""
    uri = tracking_uri(work)
    return not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).is_file()


def history_metrics(history: list[dict]) -> list[tuple[str, float, int]]:
    """(name, value, epoch) of every numeric field of every history.json row but the epoch itself."""
    rows = []
    for row in history:
        epoch = int(row.get("epoch", len(rows)))
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append((name, float(value), epoch))
    return rows


def register(work: str | Path, submission: Submission, model_name: str = graph.MODEL_PACKAGE_GROUP,
             step_key: str = "") -> Registered:
    """Log the run, then create a model version pending manual approval; return what was created.

    Idempotent: a version already tagged with this `step_key` (a run killed after registering,
    before it recorded so) is returned instead of registering the same model again.
    """
    from pipelines.local.mlflow_model import default_store

    client = open_client(work)
    if step_key and (found := find_by_step_key(client, model_name, step_key)) is not None:
        return Registered(model_name, str(found.version), found.run_id, found.source, tracking_uri(work))
    logged = log_run(client, work, submission)
    _ensure_registered_model(client, model_name)
    with default_store(tracking_uri(work)):
        version = client.create_model_version(
            model_name,
            source=logged.model_uri,
            run_id=logged.run_id,
            tags={APPROVAL_TAG: graph.APPROVAL_STATUS, WORK_TAG: str(Path(work).resolve()), **_version_tags(submission),
                  **({STEP_KEY_TAG: step_key} if step_key else {})},
            description=submission.description,
            await_creation_for=0,  # a SQLite store creates versions synchronously
            model_id=logged.model_id,
        )
    return Registered(model_name, str(version.version), logged.run_id, logged.model_uri, tracking_uri(work))


def find_by_step_key(client: MlflowClient, model_name: str, step_key: str):
    """The version of `model_name` registered by the step with this key, or None."""
    if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
        return None
    found = [v for v in client.search_model_versions(f"name = '{model_name}'") if v.tags.get(STEP_KEY_TAG) == step_key]
    return max(found, key=lambda v: int(v.version)) if found else None


def version_exists(work: str | Path, model_name: str, version: str) -> bool:
    """Whether the registry still holds this version (one may delete it in the MLflow UI)."""
    from mlflow.exceptions import MlflowException

    if not store_exists(work):
        return False
    try:
        open_client(work).get_model_version(model_name, version)
    except MlflowException:
        return False
    return True


def check_store(db: Path) -> None:
    """StepError with one sentence when the SQLite file is not a readable database (a corrupt,
    truncated or foreign mlflow.db); MLflow would fail deep inside SQLAlchemy."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.Error as err:
        problems = [str(err)]
    if problems != ["ok"]:
        raise StepError(f"{db}: the MLflow store is damaged ({problems[0]}); move it aside to start a new "
                        "registry (its versions are lost) or restore it from a copy.")


def open_client(work: str | Path) -> MlflowClient:
    """An MlflowClient on WORK's SQLite store (created on first use), offline and quiet."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    # MLflow 3.17's own SQLAlchemy usage warns on every new store; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*noload.*", module="mlflow")
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    default_db(work).parent.mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(work)
    if uri.startswith("sqlite:///") and Path(uri.removeprefix("sqlite:///")).is_file():
        check_store(Path(uri.removeprefix("sqlite:///")))
    uri = tracking_uri(work)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@dataclass(frozen=True)
class LoggedRun:
    """A finished run and the pyfunc model logged in it."""

    run_id: str
    model_uri: str  # models:/m-<id>: what a model version's source points at
    model_id: str


def log_run(client: MlflowClient, work: str | Path, submission: Submission) -> LoggedRun:
    """One finished MLflow run: params, tags, per-epoch and test metrics, artifacts, the model."""
    from mlflow.entities import Metric, Param, RunTag

    from pipelines.local import mlflow_model, run_record

    end = int(time.time() * 1000)
    run = client.create_run(_experiment_id(client, work), start_time=end - int(submission.seconds * 1000),
                            run_name=submission.tags.get("run_name"))
    run_id = run.info.run_id
    history_file = submission.model_dir / contract.HISTORY_FILE
    history = json.loads(history_file.read_text()) if history_file.is_file() else []
    report = json.loads((submission.evaluation_dir / contract.EVALUATION_FILE).read_text())
    manifest = json.loads(submission.manifest_file.read_text())
    metrics = [Metric(k, v, end, e) for k, v, e in history_metrics(history)]
    metrics += [Metric(k, v, end, 0) for k, v in report_metrics(report).items()]
    resolved = run_record.resolved_hyperparameters(submission.model_dir)
    params = [Param(k, str(v)[:6000]) for k, v in sorted({**resolved, **submission.params}.items())]
    tag_values = {**submission.tags, **run_record.git_tags(), DATA_HASH_TAG: str(manifest.get("input_sha256", "unknown"))}
    tags = [RunTag(k, str(v)) for k, v in tag_values.items()]
    for start in range(0, max(len(metrics), len(params), len(tags)), 500):  # log_batch's limits
        client.log_batch(run_id, metrics[start : start + 500], params[start : start + 100], tags[start : start + 100])
    client.log_artifact(run_id, str(submission.model_archive), "model")
    client.log_artifacts(run_id, str(submission.evaluation_dir), "evaluation")
    client.log_artifact(run_id, str(submission.manifest_file), "data")
    with tempfile.TemporaryDirectory() as tmp:
        if run_record.curves_png(history, Path(tmp) / run_record.CURVES_PNG):
            client.log_artifacts(run_id, tmp, "training")
    model = mlflow_model.log(tracking_uri(work), run_id, submission.model_dir)
    client.set_terminated(run_id, end_time=end)
    return LoggedRun(run_id, model.model_uri, model.model_id)


def _experiment_id(client: MlflowClient, work: str | Path) -> str:
    """The pipeline's experiment, its artifacts in WORK/mlartifacts (not ./mlruns of the cwd)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    location = (default_db(work).parent / ARTIFACTS_DIR).as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model (the model package group) unless it exists."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name, description="Image classifiers trained by this pipeline (classes: see each version's tags).")


def _version_tags(submission: Submission) -> dict[str, str]:
    """The headline test metrics and the data's classes as version tags, so the registry list shows
    them without the run (class names from prepare's manifest: the list the model was trained on)."""
    report = json.loads((submission.evaluation_dir / contract.EVALUATION_FILE).read_text())
    metrics = report_metrics(report)
    wanted = ("test_accuracy", "test_macro_f1", "test_weighted_f1", "test_records")
    tags = {name: f"{metrics[name]:.6g}" for name in wanted if name in metrics}
    names = json.loads(submission.manifest_file.read_text())["class_names"]
    tags["num_classes"] = str(len(names))
    tags["class_names"] = textwrap.shorten(", ".join(names), MAX_TAG_CHARS, placeholder=" ...")
    unscored = report.get(contract.EVALUATION_DETAILS_KEY, {}).get("unscored_classes", [])
    if unscored:
        tags["unscored_classes"] = ",".join(str(c["class_id"]) for c in unscored)
    return tags


def find_versions(work: str | Path, model_name: str = graph.MODEL_PACKAGE_GROUP) -> list:
    """Every version of `model_name` in WORK's registry (empty when none or no store yet)."""
    if not store_exists(work):
        return []
    return list(open_client(work).search_model_versions(f"name = '{model_name}'"))


def model_uri(model_name: str, version: str | None = None, alias: str | None = None) -> str:
    """The registry URI of a version: models:/<name>/<version>, or models:/<name>@<alias>."""
    return f"models:/{model_name}/{version}" if version else f"models:/{model_name}@{alias}"


def version_source(work: str | Path, model_name: str, version: str | None, alias: str | None) -> str:
    """The local model directory (or model.tar.gz) of a registered version, by number or alias."""
    from mlflow.exceptions import MlflowException

    label = model_uri(model_name, version, alias)
    if alias in RESERVED_ALIASES:
        raise StepError(f"{label}: MLflow reserves the alias {alias!r}; name a stage (e.g. @staging) or a version "
                        f"(models:/{model_name}/<N>).")
    if not store_exists(work):
        raise StepError(f"{label}: no MLflow store at {tracking_uri(work)}; run `make demo` (or pass WORK=).")
    client = open_client(work)
    try:
        found = client.get_model_version(model_name, version) if version else client.get_model_version_by_alias(model_name, alias)
    except MlflowException as err:
        raise StepError(f"{label}: not in the registry at {tracking_uri(work)} ({err.message.splitlines()[0]}).") from None
    if not found.source.startswith("models:/"):  # a version registered with a model.tar.gz source
        return found.source.removeprefix("file://")
    from mlflow.artifacts import download_artifacts

    from pipelines.local.mlflow_model import model_dir

    location = client.get_logged_model(found.source.removeprefix("models:/")).artifact_location
    # a local store's own folder; a server's artifacts are downloaded to a temp folder
    local = location.removeprefix("file://") if location.startswith("file://") else download_artifacts(location)
    return str(model_dir(local))


def newest_registered(work: str | Path, model_name: str = graph.MODEL_PACKAGE_GROUP):
    """The newest version registered by a run in WORK (its `work` tag), or None."""
    mine = [v for v in find_versions(work, model_name) if v.tags.get(WORK_TAG) == str(Path(work).resolve())]
    return max(mine, key=lambda v: int(v.version), default=None)


def newest_registered_uri(work: str | Path) -> tuple[str, str]:
    """The registry URI of the newest version registered by WORK's runs, and a sentence saying which."""
    version = newest_registered(work)
    if version is None:
        raise StepError(
            f"no model version registered by {work} in {tracking_uri(work)}: run `make demo` (a run below "
            f"the threshold registers nothing), or serve a model explicitly, e.g. MODEL={Path(work) / 'train' / 'model'}."
        )
    status = version.tags.get(APPROVAL_TAG, "?")
    uri = model_uri(version.name, version.version)
    return uri, f"{uri}: the newest version registered by {work} ({status}, test accuracy {version.tags.get('test_accuracy', '?')})"


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
