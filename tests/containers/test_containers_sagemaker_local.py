"""make sagemaker-local: our pipeline definition executed by the SageMaker SDK's LocalPipelineSession.

Two executions of `python -m pipelines.sagemaker_local` on a small demo set with the image under
test, parameters overridden at start (AccuracyThreshold, Epochs, the image tag): one passes the
condition and is registered in MLflow, one with an impossible threshold ends in the Fail step.
Each asserts on what the SDK left: the S3 mirror (model.tar.gz, the evaluation.json the condition
read through the PropertyFile), the training log the metric regexes read, the step statuses.
Needs `make test-containers` (Docker, docker-compose, the cpu image).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.train.epoch_log import METRIC_DEFINITIONS
from pipelines import graph
from pipelines.sagemaker_local.runner import EXECUTIONS_DIR, EXIT_BELOW_THRESHOLD, EXIT_FAILED, EXIT_REGISTERED

pytestmark = pytest.mark.containers

DEMO_SIZE = ["2", "5", "5"]  # ~800 images: seconds per step
EPOCHS = 2  # a start parameter (Epochs); the preset's 24 would take minutes
FIXED_HPS = ["max_train_images=4000", "warmup_epochs=0"]  # a start parameter (MaxTrainImages), one fixed when built


@dataclass
class Execution:
    """One finished `python -m pipelines.sagemaker_local` run."""

    code: int
    output: str
    work: Path
    folder: Path  # WORK/executions/<id>: the execution's S3, mirrored
    record: dict  # execution.json: the SDK's description, steps and parameters

    def step(self, name: str) -> dict:
        return next(s for s in self.record["steps"] if s["name"] == name)


def run_local(image: str, work: Path, *args: str, data: Path | None = None) -> Execution:
    """The CLI, as make sagemaker-local calls it, with the image under test's tag."""
    tag = image.rpartition(":")[2]
    cmd = [sys.executable, "-m", "pipelines.sagemaker_local", "--work", str(work), "--tag", tag, *args,
           *(["--data", str(data)] if data else ["--demo-size", *DEMO_SIZE])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    output = done.stdout + done.stderr
    folders = sorted((work / EXECUTIONS_DIR).glob("*/execution.json"), key=lambda p: p.stat().st_mtime)
    folder = folders[-1].parent if folders else work
    record = json.loads(folders[-1].read_text()) if folders else {"steps": []}
    return Execution(done.returncode, output, work, folder, record)


@pytest.fixture(scope="module")
def passed(image: str, tmp_path_factory: pytest.TempPathFactory) -> Execution:
    work = tmp_path_factory.mktemp("sagemaker-local")
    return run_local(image, work, "--threshold", "0.01", "--hp", f"epochs={EPOCHS}", *FIXED_HPS)


@pytest.fixture(scope="module")
def below(image: str, passed: Execution) -> Execution:
    """Same WORK and data, threshold 1.01: no model can pass it."""
    return run_local(image, passed.work, "--threshold", "1.01", "--hp", f"epochs={EPOCHS}", *FIXED_HPS)


def model_archive(execution: Execution) -> Path:
    (archive,) = execution.folder.glob(f"{graph.TRAIN.name}/*/output/{contract.MODEL_ARCHIVE}")
    return archive


def test_every_step_succeeds_and_the_model_step_runs(passed: Execution) -> None:
    assert passed.code == EXIT_REGISTERED, passed.output[-4000:]
    statuses = {s["name"]: s["status"] for s in passed.record["steps"]}
    assert statuses == {**dict.fromkeys(graph.STEP_ORDER, "Succeeded"), graph.REGISTER: "Succeeded"}
    assert passed.step(graph.CONDITION.name)["outcome"] == "outcome true"
    assert passed.record["execution"]["PipelineExecutionStatus"] == "Succeeded"


def test_start_parameters_reached_the_jobs(image: str, passed: Execution) -> None:
    parameters = passed.record["parameters"]
    assert (parameters["Epochs"], parameters["AccuracyThreshold"]) == (EPOCHS, 0.01)
    assert parameters["TrainingInstanceType"] == parameters["ProcessingInstanceType"] == "local"
    assert passed.record["image"] == image
    with tarfile.open(model_archive(passed)) as tar:
        saved = json.load(tar.extractfile(contract.HYPERPARAMETERS_FILE))
    assert saved["epochs"] == EPOCHS and saved["preset"] == "cpu" and saved["max_train_images"] == 4000


def test_the_model_archive_is_what_training_wrote(passed: Execution) -> None:
    with tarfile.open(model_archive(passed)) as tar:
        names = {name.lstrip("./") for name in tar.getnames()}
    assert {contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE} <= names


def test_the_metric_regexes_read_the_training_log(passed: Execution) -> None:
    log = (passed.work / "steps" / f"{graph.TRAIN.name}.log").read_text()
    for metric in METRIC_DEFINITIONS:
        values = re.findall(metric["Regex"], log)
        assert len(values) == EPOCHS, metric["Name"]  # one point per epoch, none from other lines
        float(values[-1])


def test_registered_in_mlflow_and_servable(passed: Execution) -> None:
    from pipelines.local import mlflow_registry as registry

    (version,) = registry.find_versions(passed.work)
    source = Path(registry.version_source(passed.work, version.name, version.version, None))  # the logged model's folder
    with tarfile.open(model_archive(passed)) as archive:
        trained = archive.extractfile(contract.HISTORY_FILE).read()
    assert (source / contract.HISTORY_FILE).read_bytes() == trained  # the model the training job wrote
    assert f"MODEL=models:/{version.name}/{version.version}" in passed.output


def test_no_job_container_or_sdk_folder_is_left_behind(docker: str, passed: Execution) -> None:
    log = (passed.work / "steps" / f"{graph.TRAIN.name}.log").read_text()
    created = re.findall(r"Creating (\S+) \.\.\. done|Container (\S+)\s+Created", log)  # compose v1 | v2
    created = [v1 or v2 for v1, v2 in created]
    assert created, "compose names the containers it creates in the step's log"
    listed = subprocess.run([docker, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True, check=True)
    assert not set(created) & set(listed.stdout.split())
    assert not (passed.work / "sdk-jobs").exists()


def test_impossible_threshold_ends_in_the_fail_step(below: Execution) -> None:
    assert below.code == EXIT_BELOW_THRESHOLD, below.output[-4000:]
    statuses = {s["name"]: s["status"] for s in below.record["steps"]}
    assert statuses[graph.CONDITION.name] == "Succeeded" and statuses[graph.FAIL] == "Failed"
    assert graph.REGISTER not in statuses
    report = json.loads((below.folder / graph.EVALUATE.name / "evaluation" / contract.EVALUATION_FILE).read_text())
    accuracy = contract.json_get(report, contract.ACCURACY_JSON_PATH)
    # The message holds the value the condition read through the PropertyFile (JsonGet on S3).
    assert below.step(graph.FAIL)["sdk_reason"] == graph.fail_message(accuracy, 1.01)
    assert f"FAILED ({graph.FAIL}): {graph.fail_message(accuracy, 1.01)}" in below.output


def test_impossible_threshold_registers_nothing(below: Execution) -> None:
    from pipelines.local import mlflow_registry as registry

    assert len(registry.find_versions(below.work)) == 1  # only the passed execution's


def test_a_failing_training_job_reports_its_own_reason(image: str, passed: Execution, tmp_path: Path) -> None:
    run = run_local(image, tmp_path, "--hp", "epochs=0", data=passed.work / "data")
    assert run.code == EXIT_FAILED
    train = run.step(graph.TRAIN.name)
    assert train["status"] == "Failed"
    assert train["reason"] == "hyperparameter epochs=0 is invalid: it must be at least 1."  # our failure file
    assert "Process exited with code" in train["sdk_reason"]  # what the SDK alone says
    assert f"FAILED ({graph.TRAIN.name}): {train['reason']}" in run.output


def test_a_failing_processing_job_reports_its_own_reason(image: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = run_local(image, tmp_path / "work", data=empty)
    assert run.code == EXIT_FAILED
    prepare = run.step(graph.PREPARE.name)
    assert prepare["status"] == "Failed" and str(contract.PREPARE_INPUT) in prepare["reason"]
    assert f"FAILED ({graph.PREPARE.name}): {prepare['reason']}" in run.output


def test_an_image_tag_not_in_the_engine_is_one_sentence(tmp_path: Path) -> None:
    run = run_local("gtsrb-mxnet-cpu:no-such-tag", tmp_path, data=tmp_path)
    assert run.code == EXIT_FAILED
    errors = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    assert errors == [errors[0]] and "gtsrb-mxnet-cpu:no-such-tag is not in the local Docker engine" in errors[0]
    assert "Traceback" not in run.output and "Pulling" not in run.output


def test_two_instances_train_with_the_parameter_server(image: str, tmp_path: Path) -> None:
    """make sagemaker-local INSTANCES=2: the SDK starts algo-1 and algo-2 from the cpu image on one
    compose network (SageMaker's multi-host contract: resourceconfig.json, algo-N by DNS); their
    launchers start ps-lite, both workers train, the first host's model is registered."""
    run = run_local(image, tmp_path / "work", "--threshold", "0.01", "--instances", "2",
                    "--hp", f"epochs={EPOCHS}", *FIXED_HPS)
    assert run.code == EXIT_REGISTERED, run.output[-4000:]
    for host in ("algo-1", "algo-2"):
        assert f"event=kvstore type=dist_sync host={host}" in run.output, run.output[-4000:]
    assert model_archive(run).stat().st_size > 0
