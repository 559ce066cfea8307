"""deploy-model against moto's SageMaker: create, update (blue/green, stubbed), unchanged redeploy,
smoke-test rollback, undeploy, and every bad input with its exit code."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pipelines.deploy import cli, errors, resources
from pipelines.deploy.packages import APPROVED
from testkit.deploy import (
    QuotasStub,
    Recorder,
    UpdateEndpointStub,
    accept_binary_requests,
    answer_next,
    prediction_body,
    recorded_clients,
    register,
    serve_quotas,
)
from testkit.pipelines import REGION, REPO_ROOT, Moto


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def update_stub(recorder: Recorder) -> UpdateEndpointStub:
    return UpdateEndpointStub(recorder)


@pytest.fixture
def quotas(recorder: Recorder) -> QuotasStub:
    return QuotasStub(recorder)


@pytest.fixture
def deploy(moto_server: Moto, monkeypatch: pytest.MonkeyPatch, recorder, update_stub, quotas, tmp_path: Path):
    """Run deploy-model (in this process, recorded) for a stage config written from `fields`; exit code."""
    monkeypatch.setattr(cli, "make_clients", recorded_clients(recorder, update_stub, quotas))
    accept_binary_requests(monkeypatch)
    # moto's server logs each request on stderr from its own thread: keep that out of the CLI's output
    werkzeug = logging.getLogger("werkzeug")
    monkeypatch.setattr(werkzeug, "disabled", True)
    monkeypatch.chdir(REPO_ROOT)  # the default smoke image is a repository path

    def run(group: str, *extra: str, stage: str = "staging", **fields) -> int:
        config = {"instance_type": "ml.m5.xlarge", "initial_instance_count": 1, "model_package_group": group,
                  "wait_minutes": 1, **fields}
        path = tmp_path / f"{group}-{stage}.json"
        path.write_text(json.dumps(config))
        argv = ["--stage", stage, "--config", str(path), "--region", REGION, "--role-arn", moto_server.role,
                "--git-sha", "abc1234", "--poll-seconds", "0.05", *extra]
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        return exited.value.code

    return run


def endpoint_config_of(sm, endpoint: str) -> str:
    return sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]


def ours(sm, endpoint: str) -> tuple[list[str], list[str]]:
    """(configs, models) in moto made for the endpoint."""
    return resources.leftovers(sm, endpoint)


def test_deploy_update_redeploy_undeploy(moto_server: Moto, deploy, recorder: Recorder, capsys, tmp_path: Path) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-flow"
    endpoint = f"{group}-staging"
    v1 = register(sm, group, APPROVED)
    register(sm, group, "PendingManualApproval")
    answer_next(moto_server, prediction_body())
    github_output = tmp_path / "github_output"
    assert deploy(group, "--github-output", str(github_output)) == 0
    assert github_output.read_text() == f"model_package_arn={v1}\n"
    first = endpoint_config_of(sm, endpoint)
    assert first.startswith(f"{endpoint}-v1-")
    model = sm.describe_model(ModelName=first)
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags == {"project": "gtsrb", "stage": "staging", "model-package-version": "1", "model-package-arn": v1, "git-sha": "abc1234"}
    (create_model,) = recorder.params("CreateModel")
    assert create_model["PrimaryContainer"] == {"ModelPackageName": v1} and create_model["EnableNetworkIsolation"] is True
    out = capsys.readouterr().out
    assert f"deployed stage=staging endpoint={endpoint} version=1" in out
    assert "class_id=14 class_name='Stop'" in out
    assert f"aws sagemaker-runtime invoke-endpoint --region {REGION} --endpoint-name {endpoint} --content-type image/png" in out

    # a newer Approved version: blue/green update, the old model and config removed
    v3 = register(sm, group, APPROVED)
    answer_next(moto_server, prediction_body())
    assert deploy(group, rollback_alarms=["gtsrb-5xx"]) == 0
    second = endpoint_config_of(sm, endpoint)
    assert second.startswith(f"{endpoint}-v3-")
    assert sm.describe_endpoint_config(EndpointConfigName=second)["ProductionVariants"][0]["ModelName"] == second
    (update,) = recorder.params("UpdateEndpoint")
    assert update["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "gtsrb-5xx"}]}
    assert ours(sm, endpoint) == ([second], [second])
    assert v3 in capsys.readouterr().out

    # the same version again: nothing is created or changed
    before = len(recorder.calls)
    assert deploy(group, rollback_alarms=["gtsrb-5xx"]) == 0
    made = [op for op in recorder.operations()[before:] if op.startswith(("Create", "Update", "Delete"))]
    assert made == [] and endpoint_config_of(sm, endpoint) == second
    assert "unchanged: endpoint" in capsys.readouterr().out

    assert deploy(group, "--undeploy") == 0
    assert not sm.list_endpoints(NameContains=endpoint)["Endpoints"]
    assert ours(sm, endpoint) == ([], [])
    assert deploy(group, "--undeploy") == 0
    assert "nothing was deployed" in capsys.readouterr().out


def test_failed_smoke_test_of_a_new_endpoint_removes_it(moto_server: Moto, deploy, capsys) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-badanswer"
    register(sm, group, APPROVED)
    # the deployer does not know a package's class count (its data decides it): a negative id is what it can refuse
    answer_next(moto_server, json.dumps({"predictions": [{"class_id": -1, "class_name": "?", "probability": 0.5}]}))
    assert deploy(group, alarm_5xx_errors=1) == errors.EXIT_SMOKE_FAILED
    err = capsys.readouterr().err
    assert "smoke test: endpoint gtsrb-badanswer-staging answered class_14.png wrongly" in err
    assert "Removed endpoint gtsrb-badanswer-staging and the model, config and alarms made for it" in err
    assert not sm.list_endpoints(NameContains=group)["Endpoints"]
    assert ours(sm, f"{group}-staging") == ([], [])
    assert not moto_server.client("cloudwatch").describe_alarms(AlarmNamePrefix=group)["MetricAlarms"]


def test_a_wrong_class_for_the_stop_sign_fails_the_smoke_test(moto_server: Moto, deploy, capsys) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-oneclass"
    register(sm, group, APPROVED)
    answer_next(moto_server, prediction_body(class_id=3))  # well formed, but not the stop sign's class 14
    assert deploy(group) == errors.EXIT_SMOKE_FAILED
    assert "answered class_14.png wrongly: class 3 (Speed limit (60km/h)) first, not class 14" in capsys.readouterr().err
    assert not sm.list_endpoints(NameContains=group)["Endpoints"]


def serving_v1_with_v2_approved(moto_server: Moto, deploy, group: str) -> tuple[str, str]:
    """Version 1 deployed to staging and a newer version approved: (endpoint, v1's endpoint config)."""
    sm, endpoint = moto_server.client("sagemaker"), f"{group}-staging"
    register(sm, group, APPROVED)
    answer_next(moto_server, prediction_body())
    assert deploy(group) == 0
    first = endpoint_config_of(sm, endpoint)
    register(sm, group, APPROVED)
    return endpoint, first


def test_failed_smoke_test_after_an_update_rolls_back(moto_server: Moto, deploy, recorder: Recorder, capsys) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-rollback"
    endpoint, first = serving_v1_with_v2_approved(moto_server, deploy, group)
    answer_next(moto_server, "not json")
    assert deploy(group) == errors.EXIT_SMOKE_FAILED
    assert "Rolled back: endpoint gtsrb-rollback-staging serves" in capsys.readouterr().err
    assert [u["EndpointConfigName"] for u in recorder.params("UpdateEndpoint")][-1] == first
    assert endpoint_config_of(sm, endpoint) == first
    assert ours(sm, endpoint) == ([first], [first])


def test_update_that_sagemaker_rolls_back_exits_3_and_cleans_up(moto_server: Moto, deploy, update_stub, capsys) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-alarm"
    endpoint, first = serving_v1_with_v2_approved(moto_server, deploy, group)
    update_stub.roll_back_with = "Alarm gtsrb-5xx went off"
    assert deploy(group, rollback_alarms=["gtsrb-5xx"]) == errors.EXIT_DEPLOY_FAILED
    assert "SageMaker rolled endpoint gtsrb-alarm-staging back" in capsys.readouterr().err
    assert endpoint_config_of(sm, endpoint) == first and ours(sm, endpoint) == ([first], [first])


@pytest.mark.parametrize(
    ("setup", "fields", "extra", "code", "message"),
    [
        ("none", {}, [], errors.EXIT_NO_VERSION, "has no Approved version"),
        ("nogroup", {}, [], errors.EXIT_NO_VERSION, "does not exist in this account and region"),
        ("pending-arn", {}, [], errors.EXIT_NO_VERSION, "is PendingManualApproval, not Approved"),
        ("cpu", {"instance_type": "ml.p5.48xlarge"}, [], errors.EXIT_BAD_INPUT, "ml.p5.48xlarge cannot run the cpu image's model server"),
        ("cpu", {"instance_type": "ml.c7g.xlarge"}, [], errors.EXIT_BAD_INPUT, "ml.c7g.xlarge cannot run the cpu image's model server"),
        ("gpu", {}, [], errors.EXIT_BAD_INPUT, "ml.m5.xlarge cannot run the gpu image's model server"),
        ("cpu", {"instance_type": "ml.r5.large"}, [], errors.EXIT_BAD_INPUT, "not among the types model package"),
        ("cpu", {"initial_instance_count": "2"}, [], errors.EXIT_BAD_INPUT, "field 'initial_instance_count' must be an integer, got '2'"),
        ("cpu", {"instance_typ": "ml.m5.xlarge"}, [], errors.EXIT_BAD_INPUT, "unknown field 'instance_typ'"),
        ("cpu", {"rollback_alarms": "a"}, [], errors.EXIT_BAD_INPUT, "field 'rollback_alarms' must be a list of strings"),
        ("cpu", {"data_capture_s3_uri": "bucket/x"}, [], errors.EXIT_BAD_INPUT, "data_capture_s3_uri must be an s3:// URI"),
        ("cpu", {"data_capture_percentage": 20}, [], errors.EXIT_BAD_INPUT,
         "data_capture_percentage captures nothing without data_capture_s3_uri"),
        ("cpu", {"bake_seconds": 600, "wait_minutes": 60}, [], errors.EXIT_BAD_INPUT,
         "bake_seconds=600 watches nothing without CloudWatch alarms"),
        ("cpu", {"bake_seconds": 600, "alarm_5xx_errors": 1}, [], errors.EXIT_BAD_INPUT,
         "wait_minutes=1 is shorter than a blue/green update with bake_seconds=600"),
        ("cpu", {}, ["--smoke-image", "missing.png"], errors.EXIT_BAD_INPUT, "--smoke-image missing.png: cannot read it"),
        ("cpu", {}, ["--role-arn", "SageMakerRole"], errors.EXIT_BAD_INPUT, "is not an IAM role ARN"),
    ],
)
def test_bad_input_exits_with_its_code_and_creates_nothing(moto_server: Moto, deploy, recorder: Recorder, capsys,
                                                           setup, fields, extra, code, message) -> None:
    sm = moto_server.client("sagemaker")
    group = f"gtsrb-bad-{setup}"
    if setup == "none":
        register(sm, group, "Rejected")
    elif setup == "pending-arn":
        extra = ["--model-package-arn", register(sm, group, "PendingManualApproval")]
    elif setup in ("cpu", "gpu"):
        register(sm, group, APPROVED, variant=setup)
    assert deploy(group, *extra, **fields) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not [op for op in recorder.operations() if op.startswith(("Create", "Update", "Delete"))]


def test_missing_stage_config_names_the_file(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--stage", "qa", "--config", "deploy/qa.json", "--region", REGION])
    assert exited.value.code == errors.EXIT_BAD_INPUT
    assert "deploy/qa.json: no such stage config" in capsys.readouterr().err


def deploy_role_policy() -> dict:
    """The deploy role's IAM policy: the JSON block after its heading in docs/deployment.md."""
    text = (REPO_ROOT / "docs" / "deployment.md").read_text()
    section = text.split("### IAM policy of the deploy role", 1)[1]
    return json.loads(section.split("```json", 1)[1].split("```", 1)[0])


def allowed_actions(policy: dict) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "*" not in str(statement["Action"])
        actions |= set([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return actions


def test_iam_policy_allows_every_call_of_a_full_deployment(moto_server: Moto, deploy, recorder: Recorder) -> None:
    """Create, update, unchanged, smoke-test rollback, undeploy: every API called is in the policy."""
    sm, group = moto_server.client("sagemaker"), "gtsrb-policy"
    register(sm, group, APPROVED)
    answer_next(moto_server, prediction_body())
    assert deploy(group, rollback_alarms=["a"], alarm_5xx_errors=1) == 0
    register(sm, group, APPROVED)
    answer_next(moto_server, prediction_body())
    assert deploy(group, rollback_alarms=["a"], alarm_model_latency_ms=500) == 0
    assert deploy(group, rollback_alarms=["a"], alarm_model_latency_ms=500) == 0
    register(sm, group, APPROVED)
    answer_next(moto_server, "{}")
    assert deploy(group, alarm_5xx_errors=1) == errors.EXIT_SMOKE_FAILED
    assert deploy(group, "--undeploy", alarm_5xx_errors=1) == 0
    called = recorder.actions
    assert {"sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:InvokeEndpoint", "sagemaker:DeleteModel",
            "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"} <= called
    allowed = allowed_actions(deploy_role_policy())
    assert called - allowed == set()
    assert "iam:PassRole" in allowed and "sagemaker:AddTags" in allowed  # CreateModel passes a role; Tags= needs AddTags
    assert "cloudwatch:TagResource" in allowed  # PutMetricAlarm with Tags=


def test_endpoint_still_creating_at_the_wait_limit_is_removed(moto_server: Moto, deploy, monkeypatch, capsys) -> None:
    from moto.sagemaker import models

    original = models.FakeEndpoint.__init__

    def creating(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.endpoint_status = "Creating"

    monkeypatch.setattr(models.FakeEndpoint, "__init__", creating)
    sm, group = moto_server.client("sagemaker"), "gtsrb-slow"
    register(sm, group, APPROVED)
    assert deploy(group, wait_minutes=0.002) == errors.EXIT_DEPLOY_FAILED
    captured = capsys.readouterr()
    assert "endpoint=gtsrb-slow-staging status=Creating" in captured.out  # the progress line
    assert "wait: endpoint gtsrb-slow-staging is still Creating after 0.002 minutes" in captured.err
    assert not sm.list_endpoints(NameContains=group)["Endpoints"] and ours(sm, f"{group}-staging") == ([], [])


@pytest.mark.parametrize("stage", ["staging", "prod"])
def test_shipped_stage_configs_load_and_fit_the_cpu_image(stage: str) -> None:
    from pipelines.deploy import stage_config
    from pipelines.instances import check_serving_instance_type

    config = stage_config.load(REPO_ROOT / stage_config.config_path(stage))
    assert check_serving_instance_type("cpu", config.instance_type) == config.instance_type


@pytest.mark.slow
def test_make_deploy_and_undeploy_against_moto(moto_server: Moto, monkeypatch, tmp_path: Path) -> None:
    """`make deploy STAGE=staging` (a fresh process, deploy/staging.json as shipped), then `make undeploy`."""
    import os
    import subprocess

    from pipelines import graph

    accept_binary_requests(monkeypatch)  # the moto server runs in this process
    serve_quotas(monkeypatch, {"ml.m5.xlarge for endpoint usage": 1.0})  # staging's fleet, nothing more
    sm = moto_server.client("sagemaker")
    arn = register(sm, graph.MODEL_PACKAGE_GROUP, APPROVED)
    answer_next(moto_server, prediction_body())
    env = {**os.environ, "HOME": str(tmp_path)}

    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args, f"REGION={REGION}"],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)

    deployed = make("deploy", "STAGE=staging", f"ROLE_ARN={moto_server.role}", "TAG=ddddddd")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    endpoint = f"{graph.MODEL_PACKAGE_GROUP}-staging"
    assert f"package={arn}" in deployed.stdout and "git-sha=ddddddd" in deployed.stdout
    variant = sm.describe_endpoint_config(EndpointConfigName=endpoint_config_of(sm, endpoint))["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.xlarge", 1)  # deploy/staging.json
    undeployed = make("undeploy", "STAGE=staging")
    assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
    assert not sm.list_endpoints(NameContains=endpoint)["Endpoints"] and ours(sm, endpoint) == ([], [])


def test_no_region_is_bad_input(monkeypatch, capsys) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(REPO_ROOT)
    with pytest.raises(SystemExit) as exited:
        cli.main(["--stage", "staging"])
    assert exited.value.code == errors.EXIT_BAD_INPUT
    assert "no AWS region: pass --region" in capsys.readouterr().err


def test_prod_update_rolls_back_on_alarms_deploy_model_made(moto_server: Moto, deploy, recorder: Recorder) -> None:
    """A bake watches real alarms: 5XX errors and model latency of the endpoint's variant, named in the update."""
    group = "gtsrb-alarms"
    endpoint, _ = serving_v1_with_v2_approved(moto_server, deploy, group)
    answer_next(moto_server, prediction_body())
    fields = {"alarm_5xx_errors": 1, "alarm_model_latency_ms": 800, "bake_seconds": 600, "wait_minutes": 35}
    assert deploy(group, rollback_alarms=["team-alarm"], **fields) == 0
    cloudwatch = moto_server.client("cloudwatch")
    made = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix=endpoint)["MetricAlarms"]}
    assert set(made) == {f"{endpoint}-5xx-errors", f"{endpoint}-model-latency"}
    five, latency = made[f"{endpoint}-5xx-errors"], made[f"{endpoint}-model-latency"]
    assert (five["Namespace"], five["MetricName"], five["Threshold"]) == ("AWS/SageMaker", "Invocation5XXErrors", 1.0)
    assert (latency["MetricName"], latency["Threshold"]) == ("ModelLatency", 800_000.0)  # microseconds
    assert {d["Name"]: d["Value"] for d in five["Dimensions"]} == {"EndpointName": endpoint, "VariantName": resources.VARIANT_NAME}
    (update,) = recorder.params("UpdateEndpoint")
    rollback = update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert [a["AlarmName"] for a in rollback] == ["team-alarm", f"{endpoint}-5xx-errors", f"{endpoint}-model-latency"]
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["WaitIntervalInSeconds"] == 600 == policy["TerminationWaitInSeconds"]
    assert deploy(group, "--undeploy", **fields) == 0
    assert not cloudwatch.describe_alarms(AlarmNamePrefix=endpoint)["MetricAlarms"]


def test_the_shipped_stage_configs_load_and_prod_bakes_on_alarms() -> None:
    from pipelines.deploy import alarms, stage_config

    staging, prod = (stage_config.load(REPO_ROOT / "deploy" / f"{s}.json") for s in ("staging", "prod"))
    assert prod.bake_seconds > 0 and len(alarms.alarm_names("e", prod)) == 2
    assert prod.wait_minutes * 60 >= stage_config.update_seconds(prod.bake_seconds)
    assert staging.bake_seconds == 0


def test_preflight_refuses_an_update_the_endpoint_quota_cannot_double(moto_server: Moto, deploy, quotas: QuotasStub,
                                                                      recorder: Recorder, capsys) -> None:
    sm, group = moto_server.client("sagemaker"), "gtsrb-quota"
    register(sm, group, APPROVED)
    quotas.values = {"ml.m5.xlarge for endpoint usage": 2.0}
    answer_next(moto_server, prediction_body())
    assert deploy(group, initial_instance_count=2) == 0  # a new endpoint: 2 instances fit
    register(sm, group, APPROVED)
    before = len(recorder.calls)
    assert deploy(group, initial_instance_count=2) == errors.EXIT_BAD_INPUT  # blue/green needs 4
    err = capsys.readouterr().err
    assert "the SageMaker quota 'ml.m5.xlarge for endpoint usage' is 2 in" in err and "this run needs 4" in err
    assert err.count("\n") == 1
    assert not [op for op in recorder.operations()[before:] if op.startswith(("Create", "Update", "Delete", "Put"))]
    quotas.values = {}
    assert deploy(group, initial_instance_count=2) == errors.EXIT_BAD_INPUT
    assert f"lists no SageMaker quota 'ml.m5.xlarge for endpoint usage' in {REGION}, applied or default" in capsys.readouterr().err
    quotas.defaults = {"ml.m5.xlarge for endpoint usage": 4.0}  # no applied value (never raised): AWS's default applies
    answer_next(moto_server, prediction_body())
    assert deploy(group, initial_instance_count=2) == 0
    assert {"servicequotas:ListServiceQuotas", "servicequotas:ListAWSDefaultServiceQuotas"} <= recorder.actions
    assert recorder.actions - allowed_actions(deploy_role_policy()) == set()
