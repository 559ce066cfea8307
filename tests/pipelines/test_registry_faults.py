"""The local registry's faults: a damaged mlflow.db and MLflow's reserved alias are one sentence each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common.failure import StepError
from pipelines import graph
from pipelines.local import mlflow_registry as registry

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # MLflow imports take seconds in each command


def run_module(*argv: str) -> subprocess.CompletedProcess:
    """A command as make runs it, output captured."""
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture
def real_store(tmp_path: Path) -> Path:
    """A WORK folder with a real MLflow store holding the registered model."""
    work = tmp_path / "work"
    client = registry.open_client(work)
    client.create_registered_model(graph.MODEL_PACKAGE_GROUP)
    return work


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_mlflow_db_is_one_sentence(real_store: Path, damage: str) -> None:
    db = registry.default_db(real_store)
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with pytest.raises(StepError, match="the MLflow store is damaged"):
        registry.find_versions(real_store)
    with pytest.raises(StepError, match="the MLflow store is damaged"):
        registry.resolve(f"models:/{graph.MODEL_PACKAGE_GROUP}/1", real_store)
    result = run_module("pipelines.deploy.local_twin", "promote", "--stage", "staging", "--work", str(real_store))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ERROR: {db}: the MLflow store is damaged (") and "move it aside" in line


def test_stage_latest_is_refused_with_one_sentence(real_store: Path) -> None:
    result = run_module("pipelines.deploy.local_twin", "uri", "--stage", "latest", "--work", str(real_store))
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ERROR: STAGE=latest: MLflow reserves the alias 'latest'")
    with pytest.raises(StepError, match="MLflow reserves the alias 'latest'"):
        registry.resolve(f"models:/{graph.MODEL_PACKAGE_GROUP}@latest", real_store)
    served = run_module("pipelines.deploy.local_twin", "path", "--model", f"models:/{graph.MODEL_PACKAGE_GROUP}@latest",
                        "--work", str(real_store))  # make serve MODEL=models:/<name>@latest
    assert served.returncode == 2 and served.stdout == ""
    (line,) = served.stderr.strip().splitlines()
    assert line.startswith(f"ERROR: models:/{graph.MODEL_PACKAGE_GROUP}@latest: MLflow reserves the alias 'latest'")
    made = subprocess.run(["make", "--no-print-directory", "serve", "STAGE=latest"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert made.returncode == 2 and made.stdout == ""  # make stops before any recipe: only deploy/<stage>.json stages
    assert "STAGE=latest is not a stage: use one of prod staging" in made.stderr
