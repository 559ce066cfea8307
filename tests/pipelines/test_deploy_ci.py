"""The deploy workflow: inputs only through env:, permissions per job, staging before a gated prod."""

from __future__ import annotations

import re

import yaml

from testkit.pipelines import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "deploy.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_no_expression_is_interpolated_into_a_script() -> None:
    for name, job in load()["jobs"].items():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"job {name} step {step.get('name')} interpolates into run:"


def test_dispatch_takes_the_package_arn_and_reaches_make_through_env() -> None:
    workflow = load()
    dispatch = workflow[True]["workflow_dispatch"]  # YAML 1.1 reads the key `on` as True
    assert "model_package_arn" in dispatch["inputs"]
    jobs = workflow["jobs"]
    assert jobs["staging"]["env"]["PACKAGE_ARN"] == "${{ inputs.model_package_arn }}"
    # prod deploys exactly what staging deployed and tested (deploy-model --github-output)
    assert jobs["staging"]["outputs"]["model_package_arn"] == "${{ steps.deploy.outputs.model_package_arn }}"
    assert jobs["prod"]["env"]["PACKAGE_ARN"] == "${{ needs.staging.outputs.model_package_arn }}"
    for job in jobs.values():
        assert any('PACKAGE_ARN="$PACKAGE_ARN"' in step.get("run", "") for step in job["steps"])


def test_permissions_are_per_job_and_prod_waits_for_staging_and_its_environment() -> None:
    workflow = load()
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    for job in jobs.values():
        assert job["permissions"] == {"id-token": "write", "contents": "read"}
    assert jobs["prod"]["needs"] == "staging" and jobs["prod"]["environment"] == "prod"
    deploy_runs = [s["run"] for j in jobs.values() for s in j["steps"] if "make deploy" in s.get("run", "")]
    assert [re.search(r"STAGE=(\w+)", run).group(1) for run in deploy_runs] == ["staging", "prod"]
