"""The CI files: codebuild-buildspec's run-pipeline command works as written; the workflow calls make."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml

from pipelines.sagemaker import run_pipeline
from testkit.pipelines import REGION, REPO_ROOT, Moto


def buildspec_run_pipeline_argv(env: dict[str, str]) -> list[str]:
    """The buildspec's run-pipeline command line, with the CodeBuild variables substituted."""
    spec = yaml.safe_load((REPO_ROOT / "codebuild-buildspec.yml").read_text())
    (command,) = [cmd for cmd in spec["phases"]["build"]["commands"] if "run-pipeline" in cmd]
    expanded = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], command)
    argv = shlex.split(expanded.replace("\\\n", " "))  # backslash-newline continues the line, as in sh
    assert argv[0].endswith("run-pipeline")
    return argv[1:]


def codebuild_env(role: str) -> dict[str, str]:
    """What the SageMaker project's CodeBuild sets (and the buildspec's own exports)."""
    return {"AWS_REGION": REGION, "SAGEMAKER_PIPELINE_ROLE_ARN": role, "ARTIFACT_BUCKET": "project-artifacts",
            "SAGEMAKER_PROJECT_NAME": "gtsrb", "SAGEMAKER_PROJECT_ID": "p-abc123",
            "SAGEMAKER_PROJECT_NAME_ID": "gtsrb-p-abc123", "IMAGE_TAG": "1234abc", "WAIT_MINUTES": "0"}


def test_buildspec_passes_the_mlops_template_kwargs(no_network: None) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    argv = buildspec_run_pipeline_argv(codebuild_env("arn:aws:iam::123456789012:role/Pipeline"))
    kwargs = json.loads(argv[argv.index("--kwargs") + 1])
    template_kwargs = {"region", "role", "default_bucket", "pipeline_name", "base_job_prefix", "sagemaker_project_name"}
    assert template_kwargs <= set(kwargs)
    assert "model_package_group_name" not in kwargs  # registered where deploy/*.json deploy from (test_ci_files.py)
    pipeline = get_pipeline(**kwargs)
    assert pipeline.name == "gtsrb-p-abc123"
    assert "s3://project-artifacts/gtsrb-p-abc123" in pipeline.definition()


def test_buildspec_command_upserts_and_starts_on_moto(moto_server: Moto) -> None:
    argv = buildspec_run_pipeline_argv(codebuild_env(moto_server.role))
    with pytest.raises(SystemExit) as exited:
        run_pipeline.main(argv)
    assert exited.value.code == 0
    sm = moto_server.client("sagemaker")
    arn = sm.describe_pipeline(PipelineName="gtsrb-p-abc123")["PipelineArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"sagemaker:project-name": "gtsrb", "sagemaker:project-id": "p-abc123"}
    assert len(sm.list_pipeline_executions(PipelineName="gtsrb-p-abc123")["PipelineExecutionSummaries"]) == 1


def test_github_workflow_uses_oidc_and_the_make_targets() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github/workflows/pipeline.yml").read_text())
    # id-token only where AWS credentials are configured (tests/pipelines/test_ci_files.py checks each job)
    assert "id-token" not in workflow.get("permissions", {})
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("aws-actions/configure-aws-credentials") for u in uses)
    for target in ("make ci", "make build", "make push", "make upsert", "make definition"):
        assert any(run.strip().startswith(target) for run in runs), target
