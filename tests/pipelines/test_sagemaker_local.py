"""make sagemaker-local without Docker: the local-mode definition, start parameters, sentences, logs.

The executions themselves run in tests/containers/test_containers_sagemaker_local.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from gtsrb.common.failure import StepError
from gtsrb.train.hyperparameters import CPU_PRESET
from pipelines import graph, images
from pipelines.local.options import DEMO_SIZE, DEMO_THRESHOLD
from pipelines.sagemaker_local import cli, local_s3, preflight, progress, runner
from testkit.pipelines import IMAGE_TAG, REGION, ROLE, steps_by_name


def definition(**kwargs) -> dict:
    """A definition (the caller holds the no_network fixture)."""
    from pipelines.sagemaker.definition import get_pipeline

    return json.loads(get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, **kwargs).definition())


@pytest.fixture
def both(no_network: None) -> tuple[dict, dict]:
    """(the upsert definition, the local-mode one), from the same builder, with the network refused."""
    return definition(), definition(local_mode=True)


def model_step(definition_json: dict) -> dict:
    (step,) = steps_by_name(definition_json)[graph.CONDITION.name]["Arguments"]["IfSteps"]
    return step


def test_local_mode_changes_only_the_training_image_and_the_model_step(both: tuple[dict, dict]) -> None:
    upsert, local = both
    assert model_step(upsert)["Type"] == "RegisterModel" and model_step(local)["Type"] == "Model"  # CreateModel
    assert model_step(local)["Name"] == graph.REGISTER
    train_up = steps_by_name(upsert)[graph.TRAIN.name]["Arguments"]["AlgorithmSpecification"]
    train_local = steps_by_name(local)[graph.TRAIN.name]["Arguments"]["AlgorithmSpecification"]
    assert images.repository("gpu") in train_up["TrainingImage"] and images.repository("cpu") in train_local["TrainingImage"]
    for definition_json in both:  # the rest is equal: one builder
        steps_by_name(definition_json)[graph.TRAIN.name]["Arguments"]["AlgorithmSpecification"].pop("TrainingImage")
        steps_by_name(definition_json)[graph.CONDITION.name]["Arguments"].pop("IfSteps")
    assert upsert == local


def test_the_model_step_serves_the_trained_archive_with_the_cpu_image(both: tuple[dict, dict]) -> None:
    container = model_step(both[1])["Arguments"]["PrimaryContainer"]
    assert images.repository("cpu") in container["Image"]
    assert container["ModelDataUrl"] == {"Get": f"Steps.{graph.TRAIN.name}.ModelArtifacts.S3ModelArtifacts"}


def test_fixed_hyperparameters_are_passed_and_set_the_parameter_defaults(no_network: None) -> None:
    built = definition(local_mode=True, hyperparameters={"preset": "cpu", "max_train_images": 500})
    hps = steps_by_name(built)[graph.TRAIN.name]["Arguments"]["HyperParameters"]
    assert hps["preset"] == {"Get": "Parameters.Preset"}
    defaults = {p["Name"]: p.get("DefaultValue") for p in built["Parameters"]}
    assert (defaults["Preset"], defaults["MaxTrainImages"]) == ("cpu", 500)
    assert (defaults["Model"], defaults["ImageSize"], defaults["Epochs"]) == ("gtsrb_cnn", CPU_PRESET["image_size"], 24)  # the CPU preset


def test_a_bad_fixed_hyperparameter_is_refused_when_building(no_network: None) -> None:
    with pytest.raises(StepError, match="unknown hyperparameter 'no_such'"):
        definition(hyperparameters={"no_such": "1"})


def test_hyperparameters_split_into_start_parameters_and_fixed_ones() -> None:
    parameters, fixed = runner.split_hyperparameters({"epochs": "2", "lr": "0.05", "min_class_share": "0.3"})
    assert parameters == {"Epochs": "2", "LearningRate": "0.05"}
    assert fixed == {"preset": "cpu", "min_class_share": "0.3"}
    assert runner.split_hyperparameters({"preset": "gpu"})[1] == {"preset": "gpu"}


def test_start_parameters_get_the_types_the_sdk_demands(no_network: None) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    pipeline = get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, local_mode=True)
    typed = runner.typed_overrides(pipeline, {"Epochs": "3", "AccuracyThreshold": 1, "TrainingInstanceType": "local"})
    assert typed == {"Epochs": 3, "AccuracyThreshold": 1.0, "TrainingInstanceType": "local"}
    assert type(typed["AccuracyThreshold"]) is float
    with pytest.raises(StepError, match=r"pipeline parameter Epochs='three' is not a valid int"):
        runner.typed_overrides(pipeline, {"Epochs": "three"})


def test_the_run_overrides_instances_data_threshold_and_hyperparameters(no_network: None, tmp_path: Path) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    run = runner.SageMakerLocalRun(runner.Options(work=tmp_path, data=tmp_path, threshold=0.5, instances=2, image_tag=IMAGE_TAG,
                                                  hyperparameters={"epochs": "3", "min_class_share": "0.3"}))
    pipeline = get_pipeline(**run.pipeline_kwargs())
    assert run.start_parameters(pipeline) == {
        "InputDataUrl": tmp_path.resolve().as_uri(), "ProcessingInstanceType": "local", "TrainingInstanceType": "local",
        "TrainingInstanceCount": 2, "AccuracyThreshold": 0.5, "Epochs": 3}
    hps = steps_by_name(json.loads(pipeline.definition()))[graph.TRAIN.name]["Arguments"]["HyperParameters"]
    assert hps["min_class_share"] == "0.3"  # fixed when built; the preset names the parameters' defaults
    assert {p.name: p.default_value for p in pipeline.parameters}["Preset"] == "cpu"


REPO = Path(__file__).resolve().parents[2]
MAKE_VARIABLES = ("WORK", "DATA", "THRESHOLD", "HP", "INSTANCES", "TAG", "REGISTRY")


def make_sagemaker_local(*assignments: str) -> runner.Options:
    """What `make sagemaker-local ...` would run (make -n), parsed by the CLI it runs."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}  # only the assignments count
    dry = subprocess.run(["make", "-n", "--no-print-directory", "-o", ".venv/.installed", "sagemaker-local", *assignments],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True)
    (line,) = [x for x in dry.stdout.replace("\\\n", " ").splitlines() if "-m pipelines.sagemaker_local" in x]
    argv = shlex.split(line)
    return cli.parse_args(argv[argv.index("pipelines.sagemaker_local") + 1 :])


def test_make_sagemaker_local_defaults_to_its_own_work_and_the_demo_set() -> None:
    options = make_sagemaker_local()
    assert (options.work, options.data, options.threshold, options.instances) == (Path("runs/sagemaker-local"), None,
                                                                                  DEMO_THRESHOLD, 1)
    assert (options.hyperparameters, options.demo_size, options.image_registry) == ({}, DEMO_SIZE, "")
    assert options.image_tag and options.image_tag != "latest"  # the git SHA make build tags the image with


def test_make_sagemaker_local_passes_every_variable(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()  # the CLI checks DATA= before anything starts
    options = make_sagemaker_local(f"WORK={tmp_path / 'w'}", f"DATA={tmp_path / 'd'}", "THRESHOLD=0.5",
                                   "HP=epochs=5 max_train_images=100000", "INSTANCES=2", "TAG=abc1234")
    assert (options.work, options.data, options.threshold, options.instances, options.image_tag) == (
        tmp_path / "w", tmp_path / "d", 0.5, 2, "abc1234")
    assert options.hyperparameters == {"epochs": "5", "max_train_images": "100000"}


def test_no_docker_on_path_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StepError, match=r"needs the `docker` command, which is not on PATH: install Docker Engine"):
        preflight.check_engine()


def fake_docker(folder: Path, script: str) -> None:
    """A `docker` on PATH that runs `script` (bash) with its arguments."""
    folder.mkdir(exist_ok=True)
    (folder / "docker").write_text(f"#!/bin/bash\n{script}\n")
    (folder / "docker").chmod(0o755)


def test_no_engine_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_docker(tmp_path / "bin", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nowhere.sock")
    with pytest.raises(StepError, match=r"no Docker engine answers at unix:///nowhere.sock \(`docker info` failed\)"):
        preflight.check_engine()


def test_no_compose_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_docker(tmp_path / "bin", "echo \"docker: 'compose' is not a docker command.\" >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # and no docker-compose
    with pytest.raises(StepError, match=r"needs Docker Compose.*apt-get install docker-compose"):
        preflight.check_compose()


def test_a_missing_image_is_one_sentence_without_a_pull(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    fake_docker(tmp_path / "bin", f"echo \"$*\" >> {calls}; echo 'Error: No such image' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    with pytest.raises(StepError, match=r"image gtsrb-mxnet-cpu:abc is not in the local Docker engine, and nothing is "
                                        r"pulled: build it with `make build VARIANT=cpu BAKE_WEIGHTS=0 TAG=abc`"):
        preflight.check_image("gtsrb-mxnet-cpu:abc")
    assert "pull" not in calls.read_text()


def test_a_processing_failure_reason_comes_from_its_error_line(tmp_path: Path) -> None:
    log = tmp_path / "PrepareData.log"
    log.write_text("abc-algo-1-x1y2z | event=read\nabc-algo-1-x1y2z | ERROR: /opt/ml/processing/input/data: no images.\n"
                   "abc-algo-1-x1y2z exited with code 1\n")
    assert runner.log_reason(log) == "/opt/ml/processing/input/data: no images."
    assert runner.log_reason(tmp_path / "missing.log") == ""


def test_a_training_failure_reason_comes_from_the_failure_file_in_output_tar_gz(tmp_path: Path) -> None:
    folder = tmp_path / "TrainModel" / "job-1" / "output"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "output.tar.gz", "w:gz") as tar:
        data = b"hyperparameter epochs=0 is invalid.\n\nTraceback ..."
        info = tarfile.TarInfo("failure")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert runner.training_failure(tmp_path / "TrainModel") == "hyperparameter epochs=0 is invalid."


def test_progress_announces_steps_and_keeps_each_steps_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    sdk = logging.getLogger(progress.SDK_EXECUTION_LOGGER)
    with progress.watching(tmp_path):
        sdk.info("Starting pipeline step: '%s'", "TrainModel")
        sys.stdout.write("\x1b[36malgo-1 |\x1b[0m epoch=1 train_loss=2\r\n")
        sys.stdout.write("algo-1 | [23:18:27] ../src/io/iter_image_recordio_2.cc:178: ImageRecordIOParser2: x\n")
        sdk.info("Pipeline step '%s' SUCCEEDED.", "TrainModel")
    shown = capfd.readouterr().out
    assert "==> TrainModel: running" in shown and "==> TrainModel: Succeeded" in shown
    assert "epoch=1" in shown and "ImageRecordIOParser2" not in shown  # MXNet's lines stay in the log
    log = (tmp_path / "TrainModel.log").read_text()
    assert log.startswith("algo-1 | epoch=1 train_loss=2\n") and "ImageRecordIOParser2" in log


def test_the_local_s3_keeps_real_aws_out_of_reach(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    with local_s3.moto_s3("bucket") as endpoint:
        assert os.environ["AWS_ENDPOINT_URL"] == endpoint and "AWS_PROFILE" not in os.environ
        local_s3.client().put_object(Bucket="bucket", Key="p/x/a.txt", Body=b"a")
        assert local_s3.mirror("bucket", "p", tmp_path) == [tmp_path / "x" / "a.txt"]
    assert os.environ["AWS_PROFILE"] == "production" and os.environ.get("AWS_ENDPOINT_URL") != endpoint
