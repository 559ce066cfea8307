"""The CI definitions: no input interpolated into a shell, OIDC per job, CodeBuild's image checked."""

from __future__ import annotations

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
    assert text.index("Free disk space") < text.index('make build push VARIANT="gpu cpu"')


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
