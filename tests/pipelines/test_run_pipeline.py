"""run-pipeline against moto's SageMaker: upsert, update in place with new tags, start, exit codes."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pipelines import graph, images
from pipelines.sagemaker import run_pipeline
from testkit.pipelines import REGION, REPO_ROOT, Moto


def run_cli(argv: list[str]) -> int:
    """run-pipeline's console entry point in this process; its exit code."""
    with pytest.raises(SystemExit) as exited:
        run_pipeline.main(argv)
    return exited.value.code


def kwargs(moto: Moto, name: str, tag: str = "aaaaaaa") -> str:
    """get_pipeline kwargs as the buildspec passes them (JSON)."""
    return json.dumps({"region": REGION, "role": moto.role, "pipeline_name": name, "model_package_group_name": name,
                       "base_job_prefix": name, "image_tag": tag})


def gpu_image(moto: Moto, tag: str) -> str:
    account = moto.role.split(":")[4]
    return images.image_uri(images.ecr_registry(account, REGION), "gpu", tag)


@pytest.fixture
def execution_status(monkeypatch: pytest.MonkeyPatch):
    """Make moto's next pipeline executions end (or stay) in the given status (moto always says Succeeded)."""
    from moto.sagemaker import models

    original = models.FakePipelineExecution.__init__

    def set_status(status: str) -> None:
        def init(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.pipeline_execution_status = status

        monkeypatch.setattr(models.FakePipelineExecution, "__init__", init)

    return set_status


def test_upsert_creates_then_updates_in_place_with_new_tags(moto_server: Moto) -> None:
    sm, name = moto_server.client("sagemaker"), "gtsrb-upsert"
    first_tags = json.dumps([{"Key": "git-sha", "Value": "aaaaaaa"}, {"Key": "team", "Value": "vision"}])
    assert run_cli(["--kwargs", kwargs(moto_server, name), "--tags", first_tags, "--role-arn", moto_server.role]) == 0
    created = sm.describe_pipeline(PipelineName=name)
    assert created["RoleArn"] == moto_server.role
    steps = [s["Name"] for s in json.loads(created["PipelineDefinition"])["Steps"]]
    assert steps == list(graph.STEP_ORDER)

    second_tags = json.dumps([{"Key": "git-sha", "Value": "bbbbbbb"}, {"Key": "stage", "Value": "ci"}])
    assert run_cli(["--kwargs", kwargs(moto_server, name, "bbbbbbb"), "--tags", second_tags]) == 0
    updated = sm.describe_pipeline(PipelineName=name)
    assert updated["PipelineArn"] == created["PipelineArn"]  # updated in place, not re-created
    assert gpu_image(moto_server, "bbbbbbb") in updated["PipelineDefinition"]
    assert gpu_image(moto_server, "aaaaaaa") not in updated["PipelineDefinition"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=updated["PipelineArn"])["Tags"]}
    assert tags == {"git-sha": "bbbbbbb", "team": "vision", "stage": "ci"}  # old tags kept, new ones win
    assert len(sm.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]) == 1
    group = sm.describe_model_package_group(ModelPackageGroupName=name)  # created once, for RegisterModel
    group_tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]}
    assert group_tags == {"git-sha": "aaaaaaa", "team": "vision"}


def test_start_waits_for_success_and_passes_parameter_overrides(moto_server: Moto, capsys) -> None:
    sm, name = moto_server.client("sagemaker"), "gtsrb-start"
    argv = ["--kwargs", kwargs(moto_server, name), "--start", "--parameters", '{"Epochs": 3, "TrainingInstanceType": "ml.g4dn.xlarge"}',
            "--wait-minutes", "1", "--poll-seconds", "0.1"]
    assert run_cli(argv) == 0
    (summary,) = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=summary["PipelineExecutionArn"])
    assert {p["Name"]: p["Value"] for p in params["PipelineParameters"]} == {"Epochs": "3", "TrainingInstanceType": "ml.g4dn.xlarge"}
    assert f"execution status=Succeeded arn={summary['PipelineExecutionArn']}" in capsys.readouterr().out


def test_failed_execution_exits_2(moto_server: Moto, execution_status, capsys) -> None:
    execution_status("Failed")
    argv = ["--kwargs", kwargs(moto_server, "gtsrb-fails"), "--start", "--wait-minutes", "1", "--poll-seconds", "0.1"]
    assert run_cli(argv) == run_pipeline.EXIT_EXECUTION_FAILED
    assert "ERROR: the pipeline execution failed" in capsys.readouterr().err


def test_execution_still_running_after_the_wait_exits_3(moto_server: Moto, execution_status, capsys) -> None:
    execution_status("Executing")
    argv = ["--kwargs", kwargs(moto_server, "gtsrb-slow"), "--start", "--wait-minutes", "0.005", "--poll-seconds", "0.1"]
    assert run_cli(argv) == run_pipeline.EXIT_STILL_RUNNING
    assert "still Executing after 0.005 minutes" in capsys.readouterr().err


def test_start_without_wait_exits_0_while_running(moto_server: Moto, execution_status) -> None:
    execution_status("Executing")
    assert run_cli(["--kwargs", kwargs(moto_server, "gtsrb-nowait"), "--start"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--parameters", '{"TrainingInstanceType": "ml.p5.48xlarge"}'], "ml.p5.48xlarge cannot run the training image"),
        (["--parameters", '{"Epoch": 3}'], "unknown pipeline parameter 'Epoch'"),
        (["--parameters", '{"AccuracyThreshold": 95}'], "AccuracyThreshold=95 must be between 0 and 1"),
        (["--parameters", '{"Epochs": "many"}'], "hyperparameter epochs='many' is not a valid int"),
        (["--tags", '{"Key": "a"}'], "--tags must be a JSON array"),
        (["--tags", "[{\"Key\": \"a\"}]"], "every tag must be"),
    ],
)
def test_bad_input_exits_1_and_starts_nothing(moto_server: Moto, capsys, extra: list[str], message: str) -> None:
    name = "gtsrb-bad-input"
    assert run_cli(["--kwargs", kwargs(moto_server, name), "--start", *extra]) == 1
    assert message in capsys.readouterr().err
    assert not moto_server.client("sagemaker").list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]


def test_unknown_role_is_refused_by_the_sdks_role_check(moto_server: Moto, capsys) -> None:
    missing = "arn:aws:iam::123456789012:role/DoesNotExist"
    argv = ["--kwargs", json.dumps({"region": REGION, "role": missing, "image_tag": "abc1234", "pipeline_name": "gtsrb-norole"})]
    assert run_cli(argv) == 1
    assert "UpsertPipeline failed" in capsys.readouterr().err


@pytest.mark.slow
def test_make_upsert_against_moto(moto_server: Moto, tmp_path) -> None:
    """`make upsert` (a fresh process, as CI runs it) creates the tagged pipeline on the moto server."""
    env = {**os.environ, "HOME": str(tmp_path)}
    name = "gtsrb-make"
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "upsert", f"ROLE_ARN={moto_server.role}",
         f"REGION={REGION}", "TAG=ccccccc", f"PIPELINE_NAME={name}", "BUCKET=my-artifacts"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sm = moto_server.client("sagemaker")
    described = sm.describe_pipeline(PipelineName=name)
    assert gpu_image(moto_server, "ccccccc") in described["PipelineDefinition"]
    assert "s3://my-artifacts/" in described["PipelineDefinition"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=described["PipelineArn"])["Tags"]}
    assert tags["git-sha"] == "ccccccc"
