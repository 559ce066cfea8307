"""The preflight: which SageMaker quotas a pipeline run and the endpoints need, and the one sentence
when an account has too few (ListServiceQuotas and ListAWSDefaultServiceQuotas through botocore's Stubber:
moto has neither for SageMaker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gtsrb.common.failure import StepError
from pipelines.deploy import stage_config
from pipelines.sagemaker import preflight, run_pipeline
from testkit.deploy import GENEROUS_QUOTAS, QuotasStub, Recorder, serve_quotas
from testkit.pipelines import REGION, REPO_ROOT

SPOT_G5 = "ml.g5.xlarge for spot training job usage"
PROCESSING_M5 = "ml.m5.xlarge for processing job usage"


def test_the_default_pipeline_needs_a_spot_g5_and_a_processing_m5(offline_definition: dict) -> None:
    assert preflight.pipeline_needs(offline_definition) == {SPOT_G5: 1, PROCESSING_M5: 1}


def test_execution_overrides_change_the_quotas(offline_definition: dict) -> None:
    overrides = {"TrainingInstanceType": "ml.p3.2xlarge", "TrainingInstanceCount": 2}  # processing: always one instance
    assert preflight.pipeline_needs(offline_definition, overrides) == {
        "ml.p3.2xlarge for spot training job usage": 2, PROCESSING_M5: 1}


def test_without_spot_the_on_demand_training_quota_counts(offline_definition: dict) -> None:
    steps = [dict(s, Arguments={**s["Arguments"], "EnableManagedSpotTraining": False}) if s["Type"] == "Training" else s
             for s in offline_definition["Steps"]]
    needs = preflight.pipeline_needs({**offline_definition, "Steps": steps})
    assert needs == {"ml.g5.xlarge for training job usage": 1, PROCESSING_M5: 1}


def test_the_shipped_stages_need_their_fleets_plus_one_blue_green_update() -> None:
    configs = [stage_config.load(REPO_ROOT / "deploy" / f"{s}.json") for s in ("staging", "prod")]
    needs = preflight.stages_needs((c.instance_type, c.initial_instance_count) for c in configs)
    assert needs == {"ml.m5.xlarge for endpoint usage": 1 + 2 + 2}
    assert preflight.endpoint_needs("ml.m5.xlarge", 2, updating=True) == {"ml.m5.xlarge for endpoint usage": 4}


def test_a_zero_quota_is_refused_naming_it_and_the_number_needed() -> None:
    stub = QuotasStub(Recorder(), {SPOT_G5: 0.0, PROCESSING_M5: 20.0})
    with pytest.raises(StepError) as refused:
        preflight.check(stub.client(REGION), {SPOT_G5: 1, PROCESSING_M5: 1}, REGION)
    assert str(refused.value) == (
        f"preflight: the SageMaker quota '{SPOT_G5}' is 0 in {REGION} but this run needs 1: request an increase "
        "(Service Quotas console, Amazon SageMaker) or choose another instance type.")


def test_enough_quota_passes_and_reports_the_values() -> None:
    recorder = Recorder()
    stub = QuotasStub(recorder, {SPOT_G5: 1.0, PROCESSING_M5: 20.0, "ml.p5.48xlarge for endpoint usage": 0.0})
    assert preflight.check(stub.client(REGION), {SPOT_G5: 1, PROCESSING_M5: 1}, REGION) == {SPOT_G5: 1.0, PROCESSING_M5: 20.0}
    assert recorder.actions == {"servicequotas:ListServiceQuotas"}


def test_a_quota_without_an_applied_value_is_read_from_the_defaults() -> None:
    # ListServiceQuotas leaves out a quota that has no applied value (never raised); its default applies then
    recorder = Recorder()
    stub = QuotasStub(recorder, {PROCESSING_M5: 20.0}, defaults={SPOT_G5: 0.0, PROCESSING_M5: 4.0})
    with pytest.raises(StepError, match=f"the SageMaker quota '{SPOT_G5}' is 0 in {REGION} but this run needs 1"):
        preflight.check(stub.client(REGION), {SPOT_G5: 1, PROCESSING_M5: 1}, REGION)
    stub.defaults = {SPOT_G5: 1.0, PROCESSING_M5: 4.0}
    assert preflight.check(stub.client(REGION), {SPOT_G5: 1, PROCESSING_M5: 1}, REGION) == {SPOT_G5: 1.0, PROCESSING_M5: 20.0}
    assert recorder.actions == {"servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"}
    pipeline_iam = (REPO_ROOT / "docs" / "sagemaker-pipeline.md").read_text().split("## Service quotas", 1)[0]
    assert all(action in pipeline_iam for action in recorder.actions)  # the IAM paragraph of run-pipeline's caller


def test_the_docs_list_every_quota_kind() -> None:
    text = (REPO_ROOT / "docs" / "sagemaker-pipeline.md").read_text()
    for name in (SPOT_G5, "ml.g5.xlarge for training job usage", PROCESSING_M5, "ml.m5.xlarge for endpoint usage"):
        assert name in text, name
    assert "make preflight" in text


def test_run_pipeline_start_refuses_before_changing_anything(moto_server, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    serve_quotas(monkeypatch, {SPOT_G5: 0.0, PROCESSING_M5: 20.0})  # a new account: no spot GPU quota
    name = "gtsrb-noquota"
    argv = ["--kwargs", json.dumps({"region": REGION, "role": moto_server.role, "pipeline_name": name, "image_tag": "abc1234"}),
            "--start"]
    with pytest.raises(SystemExit) as exited:
        run_pipeline.main(argv)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert f"the SageMaker quota '{SPOT_G5}' is 0 in {REGION} but this run needs 1" in err and "Traceback" not in err
    sm = moto_server.client("sagemaker")
    assert name not in [p["PipelineName"] for p in sm.list_pipelines()["PipelineSummaries"]]


@pytest.mark.slow
def test_make_preflight_reads_the_pipeline_and_both_stages(moto_server, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [sys.executable, "-m", "pipelines.sagemaker.preflight", "--kwargs", json.dumps({"region": REGION, "role": moto_server.role,
            "image_tag": "abc1234"}), "--stage", "staging", "--stage", "prod"]

    def preflight() -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180, check=False)

    done = preflight()
    assert done.returncode == 0, done.stderr
    assert f"quota ok: '{SPOT_G5}' = 10 (needs 1)" in done.stdout
    assert "quota ok: 'ml.m5.xlarge for endpoint usage' = 10 (needs 5)" in done.stdout
    serve_quotas(monkeypatch, {**GENEROUS_QUOTAS, "ml.m5.xlarge for endpoint usage": 4.0})
    done = preflight()
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
        f"ERROR: preflight: the SageMaker quota 'ml.m5.xlarge for endpoint usage' is 4 in {REGION} but this run needs 5: "
        "request an increase (Service Quotas console, Amazon SageMaker) or choose another instance type.")
