"""The CI definitions: no input interpolated into a shell, OIDC per job, CodeBuild's image checked."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from testkit.pipelines import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
BUILDSPEC = REPO_ROOT / "codebuild-buildspec.yml"


def test_no_expression_is_interpolated_into_a_run_script() -> None:
    for path in WORKFLOWS:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for step in job.get("steps", []):
                assert "${{" not in step.get("run", ""), f"{path.name} {job_name}: {step.get('name')}: use env:"


def test_id_token_is_granted_per_job_never_workflow_wide() -> None:
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert "id-token" not in (workflow.get("permissions") or {}), path.name
        for name, job in workflow["jobs"].items():
            uses_aws = any("configure-aws-credentials" in s.get("uses", "") for s in job.get("steps", []))
            assert (job.get("permissions", {}).get("id-token") == "write") == uses_aws, f"{path.name} {name}"


def test_the_gpu_build_frees_disk_first() -> None:
    text = (REPO_ROOT / ".github" / "workflows" / "pipeline.yml").read_text()
    assert text.index("Free disk space") < text.index('make build VARIANT="gpu cpu"')


def test_every_ci_path_runs_make_ci() -> None:
    """One CI entry: .ci/run, the GitHub workflow's test job and CodeBuild all call `make ci`."""
    assert "make ci" in (REPO_ROOT / ".ci" / "run").read_text().split("\n", 4)[-1]
    test_job = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "pipeline.yml").read_text())["jobs"]["test"]
    assert any(step.get("run", "").startswith("make ci") for step in test_job["steps"])
    assert any(c.startswith("make ci") for c in yaml.safe_load(BUILDSPEC.read_text())["phases"]["pre_build"]["commands"])


def install_check() -> str:
    """The buildspec's first install command: the runtime check."""
    return yaml.safe_load(BUILDSPEC.read_text())["phases"]["install"]["commands"][0]


def test_buildspec_fails_early_naming_the_codebuild_image(tmp_path) -> None:
    check = install_check()
    assert "aws/codebuild/standard:7.0" in check
    # Run it where python3.11 is missing (the template's default image): exit 1 with the sentence.
    result = subprocess.run(["bash", "-c", check], env={"PATH": str(tmp_path)}, capture_output=True, text=True,
                            check=False, executable="/bin/bash")
    assert result.returncode == 1 and "use the image aws/codebuild/standard:7.0" in result.stdout
    assert re.search(r"aws/codebuild/standard:7\.0", (REPO_ROOT / "docs" / "sagemaker-pipeline.md").read_text())


def aws_steps(job: dict) -> list[tuple[int, dict]]:
    """(index, step) of the job's configure-aws-credentials steps."""
    return [(i, s) for i, s in enumerate(job.get("steps", [])) if "configure-aws-credentials" in s.get("uses", "")]


def test_credentials_are_asked_for_after_the_build_and_last_the_whole_job() -> None:
    # configure-aws-credentials gives one hour unless role-duration-seconds says more: a job that can
    # run longer must ask after the long build, for long enough (the role's MaxSessionDuration allows 7200).
    for path in WORKFLOWS:
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for index, step in aws_steps(job):
                duration = int(step["with"]["role-duration-seconds"])
                assert 900 <= duration <= 7200, f"{path.name} {name}: role-duration-seconds={duration}"
                builds = [i for i, s in enumerate(job["steps"]) if "make build" in s.get("run", "")]
                assert all(i < index for i in builds), f"{path.name} {name}: credentials before the image build"
                # the credentials last until the job's timeout; a job that builds first (the GPU image takes
                # 30+ minutes on a hosted runner) may ask for that much less
                assert duration >= 60 * min(job["timeout-minutes"], 120) - 60 * 30 * bool(builds), f"{path.name} {name}"


def test_deploy_credentials_cover_the_deploy_and_the_rollback_waits() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    for name, job in workflow["jobs"].items():
        stage = json.loads((REPO_ROOT / "deploy" / f"{job['environment']}.json").read_text())
        needed = 60 * (2 * stage["wait_minutes"] + 5)  # roll out, then roll back, + smoke test and cleanup
        ((_, step),) = aws_steps(job)
        assert int(step["with"]["role-duration-seconds"]) >= needed, name
        assert 60 * job["timeout-minutes"] >= needed, name


def test_one_model_package_group_from_registration_to_deployment() -> None:
    from pipelines import graph

    group = graph.MODEL_PACKAGE_GROUP
    assert "model_package_group_name" not in BUILDSPEC.read_text()  # the project path registers into the default
    for stage in sorted((REPO_ROOT / "deploy").glob("*.json")):
        assert json.loads(stage.read_text()).get("model_package_group", group) == group, stage.name
    deployment = (REPO_ROOT / "docs" / "deployment.md").read_text()
    assert f"model-package-group/{group}" in deployment and f'"ModelPackageGroupName": ["{group}"]' in deployment


def test_docs_give_the_oidc_subject_of_every_environment_that_assumes_a_role() -> None:
    docs = (REPO_ROOT / "docs" / "sagemaker-pipeline.md").read_text() + (REPO_ROOT / "docs" / "deployment.md").read_text()
    for path in WORKFLOWS:
        for name, job in yaml.safe_load(path.read_text())["jobs"].items():
            if aws_steps(job) and "environment" in job:
                assert f":environment:{job['environment']}" in docs or ":environment:*" in docs, f"{path.name} {name}"
    assert "repo:<owner>/<repo>:environment:sagemaker" in docs


def test_eventbridge_transformer_reads_the_arn_through_input_paths_map() -> None:
    text = (REPO_ROOT / "docs" / "deployment.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```json")[1:]]
    (transformer,) = [json.loads(b) for b in blocks if "InputPathsMap" in b]
    variable = next(iter(transformer["InputPathsMap"]))
    assert transformer["InputPathsMap"][variable] == "$.detail.ModelPackageArn"
    body = json.loads(transformer["InputTemplate"].replace(f"<{variable}>", "arn:aws:sagemaker:x"))
    assert body == {"ref": "main", "inputs": {"model_package_arn": "arn:aws:sagemaker:x"}}


def test_the_first_run_creates_the_bucket_it_syncs_to() -> None:
    text = (REPO_ROOT / "docs" / "sagemaker-pipeline.md").read_text()
    sync = re.search(r"aws s3 sync \S+ s3://([^/\s]+)/", text)
    assert sync and text.index(f"aws s3 mb s3://{sync.group(1)}") < sync.start()
