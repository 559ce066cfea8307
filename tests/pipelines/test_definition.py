"""The SageMaker pipeline definition: rendered offline, wired from the shared graph and contracts."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

import pytest

from gtsrb.common import contract
from gtsrb.common.failure import StepError
from gtsrb.train.epoch_log import EPOCH_FIELDS, METRIC_DEFINITIONS, epoch_line, hyperparameters_line
from gtsrb.train.hyperparameters import Hyperparameters
from pipelines import graph, images
from pipelines.sagemaker.settings import HYPERPARAMETER_OF
from testkit.pipelines import IMAGE_TAG, REGION, REPO_ROOT, ROLE, steps_by_name

ACCOUNT = ROLE.split(":")[4]
REGISTRY = images.ecr_registry(ACCOUNT, REGION)


def gets(node: object) -> list[str]:
    """Every {"Get": ...} reference anywhere in a JSON tree."""
    if isinstance(node, dict):
        found = [node["Get"]] if set(node) == {"Get"} else []
        return found + [g for value in node.values() for g in gets(value)]
    if isinstance(node, list):
        return [g for item in node for g in gets(item)]
    return []


def render(node: object, values: dict[str, str]) -> str:
    """Evaluate a Std:Join / Get / JsonGet expression with test values, as the service would."""
    if isinstance(node, str):
        return node
    if "Std:Join" in node:
        join = node["Std:Join"]
        return join["On"].join(render(v, values) for v in join["Values"])
    if "Std:JsonGet" in node:
        return values[node["Std:JsonGet"]["Path"]]
    return values[node["Get"]]


def test_steps_types_and_order(offline_definition: dict) -> None:
    top = [(s["Name"], s["Type"]) for s in offline_definition["Steps"]]
    assert top == list(zip(graph.STEP_ORDER, ["Processing", "Training", "Processing", "Condition"], strict=True))
    condition = offline_definition["Steps"][3]["Arguments"]
    assert [(s["Name"], s["Type"]) for s in condition["IfSteps"]] == [(graph.REGISTER, "RegisterModel")]
    assert [(s["Name"], s["Type"]) for s in condition["ElseSteps"]] == [(graph.FAIL, "Fail")]


def test_every_get_resolves_to_a_parameter_or_a_step_property(offline_definition: dict) -> None:
    parameters = {p["Name"] for p in offline_definition["Parameters"]}
    steps = steps_by_name(offline_definition)
    references = gets(offline_definition["Steps"])
    assert len(references) > 20
    for ref in references:
        kind, name, *rest = ref.split(".")
        if kind == "Parameters":
            assert name in parameters, ref
        elif kind == "Execution":
            assert ref == "Execution.PipelineExecutionId", ref
        else:
            assert kind == "Steps" and name in steps, ref
            prop = ".".join(rest)
            outputs = re.fullmatch(r"ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri", prop)
            if outputs:
                declared = [o["OutputName"] for o in steps[name]["Arguments"]["ProcessingOutputConfig"]["Outputs"]]
                assert outputs.group(1) in declared, ref
            elif prop.startswith("PropertyFiles."):
                assert prop.split(".")[1] in [f["PropertyFileName"] for f in steps[name]["PropertyFiles"]], ref
            else:
                assert (steps[name]["Type"], prop) == ("Training", "ModelArtifacts.S3ModelArtifacts"), ref


def test_images_are_ours_and_no_code_is_uploaded(offline_definition: dict) -> None:
    steps = steps_by_name(offline_definition)
    cpu, gpu = images.image_uri(REGISTRY, "cpu", IMAGE_TAG), images.image_uri(REGISTRY, "gpu", IMAGE_TAG)
    for spec in (graph.PREPARE, graph.EVALUATE):
        args = steps[spec.name]["Arguments"]
        assert args["AppSpecification"]["ImageUri"] == cpu
        assert args["AppSpecification"]["ContainerEntrypoint"] == spec.command()
        assert [i["InputName"] for i in args["ProcessingInputs"]] == list(spec.inputs)  # no "code" input
    training = steps[graph.TRAIN.name]["Arguments"]
    assert training["AlgorithmSpecification"]["TrainingImage"] == gpu
    assert "ContainerEntrypoint" not in training["AlgorithmSpecification"]  # the image's own entry point
    assert [ch["ChannelName"] for ch in training["InputDataConfig"]] == list(graph.TRAIN.channels)
    assert not any(key.startswith("sagemaker_") for key in training["HyperParameters"])  # no submit dir
    register = steps[graph.REGISTER]["Arguments"]["InferenceSpecification"]["Containers"]
    assert [ctr["Image"] for ctr in register] == [cpu]  # the serving image (test_registration_serving.py)
    assert "s3://" not in json.dumps(training["AlgorithmSpecification"])


def test_processing_wires_come_from_the_graph(offline_definition: dict) -> None:
    steps = steps_by_name(offline_definition)
    for spec in (graph.PREPARE, graph.EVALUATE):
        args = steps[spec.name]["Arguments"]
        assert {i["InputName"]: i["S3Input"]["LocalPath"] for i in args["ProcessingInputs"]} == {
            name: str(item.path) for name, item in spec.inputs.items()}
        outputs = args["ProcessingOutputConfig"]["Outputs"]
        assert {o["OutputName"]: o["S3Output"]["LocalPath"] for o in outputs} == {
            name: str(path) for name, path in spec.outputs.items()}
        assert args["NetworkConfig"]["EnableNetworkIsolation"] is True
    prepare = steps[graph.PREPARE.name]
    assert prepare["Arguments"]["ProcessingInputs"][0]["S3Input"]["S3Uri"] == {"Get": "Parameters.InputDataUrl"}
    assert prepare["Arguments"]["AppSpecification"]["ContainerArguments"] == [
        "--image-size", {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.ImageSize"}]}},
        "--data-version", {"Get": "Parameters.DataVersion"}]
    assert prepare["CacheConfig"]["Enabled"] is True
    evaluate_inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in steps[graph.EVALUATE.name]["Arguments"]["ProcessingInputs"]}
    assert evaluate_inputs == {
        "model": {"Get": f"Steps.{graph.TRAIN.name}.ModelArtifacts.S3ModelArtifacts"},
        "test": {"Get": f"Steps.{graph.PREPARE.name}.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"},
    }


def test_instance_parameters_reach_the_steps(offline_definition: dict) -> None:
    steps = steps_by_name(offline_definition)
    for name in (graph.PREPARE.name, graph.EVALUATE.name):
        cluster = steps[name]["Arguments"]["ProcessingResources"]["ClusterConfig"]
        assert cluster["InstanceType"] == {"Get": "Parameters.ProcessingInstanceType"}
        assert cluster["InstanceCount"] == 1  # prepare and evaluate do not shard: no ProcessingInstanceCount
    resources = steps[graph.TRAIN.name]["Arguments"]["ResourceConfig"]
    assert resources["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert resources["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}


def test_training_job_settings(offline_definition: dict) -> None:
    args = steps_by_name(offline_definition)[graph.TRAIN.name]["Arguments"]
    channels = {ch["ChannelName"]: ch["DataSource"]["S3DataSource"]["S3Uri"] for ch in args["InputDataConfig"]}
    assert channels == {
        name: {"Get": f"Steps.{src.step}.ProcessingOutputConfig.Outputs['{src.output}'].S3Output.S3Uri"}
        for name, src in graph.TRAIN.channels.items()}
    assert args["EnableManagedSpotTraining"] is True and args["EnableNetworkIsolation"] is True
    stop = args["StoppingCondition"]
    assert stop["MaxRuntimeInSeconds"] == 4 * 3600 and stop["MaxWaitTimeInSeconds"] >= stop["MaxRuntimeInSeconds"]
    assert "Execution.PipelineExecutionId" in json.dumps(args["CheckpointConfig"]["S3Uri"])
    assert args["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS


def test_hyperparameters_are_stringified_parameters_with_the_train_steps_names(offline_definition: dict) -> None:
    hps = steps_by_name(offline_definition)[graph.TRAIN.name]["Arguments"]["HyperParameters"]
    types = {p["Name"]: p["Type"] for p in offline_definition["Parameters"]}
    for parameter, hp in HYPERPARAMETER_OF.items():
        get = {"Get": f"Parameters.{parameter}"}  # numbers must reach the job as strings: Join
        assert hps[hp] == (get if types[parameter] == "String" else {"Std:Join": {"On": "", "Values": [get]}})
    assert len(hps) == len(HYPERPARAMETER_OF)
    assert set(hps) <= {f.name for f in dataclasses.fields(Hyperparameters)}
    defaults = {p["Name"]: p["DefaultValue"] for p in offline_definition["Parameters"]}
    typed = Hyperparameters.from_mapping({hp: str(defaults[p]) for p, hp in HYPERPARAMETER_OF.items()})
    assert typed == Hyperparameters()  # the pipeline's defaults are the train step's defaults


def test_condition_reads_the_shared_json_path(offline_definition: dict) -> None:
    steps = steps_by_name(offline_definition)
    (condition,) = steps[graph.CONDITION.name]["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["RightValue"] == {"Get": "Parameters.AccuracyThreshold"}
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["Path"] == contract.ACCURACY_JSON_PATH
    (prop_file,) = steps[graph.EVALUATE.name]["PropertyFiles"]
    assert json_get["PropertyFile"] == {"Get": f"Steps.{graph.EVALUATE.name}.PropertyFiles.{prop_file['PropertyFileName']}"}
    assert (prop_file["OutputName"], prop_file["FilePath"]) == (graph.CONDITION.source.output, contract.EVALUATION_FILE)


def test_fail_message_is_the_graphs_with_the_real_values(offline_definition: dict) -> None:
    message = steps_by_name(offline_definition)[graph.FAIL]["Arguments"]["ErrorMessage"]
    values = {contract.ACCURACY_JSON_PATH: "0.912", "Parameters.AccuracyThreshold": "0.95"}
    assert render(message, values) == graph.fail_message("0.912", "0.95")


def test_register_step(offline_definition: dict) -> None:
    args = steps_by_name(offline_definition)[graph.REGISTER]["Arguments"]
    assert args["ModelPackageGroupName"] == graph.MODEL_PACKAGE_GROUP
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    stats = args["ModelMetrics"]["ModelQuality"]["Statistics"]
    evaluation_output = f"Steps.{graph.EVALUATE.name}.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"
    assert render(stats["S3Uri"], {evaluation_output: "s3://b/x/evaluation"}) == f"s3://b/x/evaluation/{contract.EVALUATION_FILE}"
    spec = args["InferenceSpecification"]
    assert spec["Containers"][0]["ModelDataUrl"] == {"Get": f"Steps.{graph.TRAIN.name}.ModelArtifacts.S3ModelArtifacts"}
    assert "application/x-image" in spec["SupportedContentTypes"] and "application/json" in spec["SupportedResponseMIMETypes"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"] and spec["SupportedTransformInstanceTypes"]
    approval = {p["Name"]: p for p in offline_definition["Parameters"]}["ModelApprovalStatus"]
    assert approval["DefaultValue"] == graph.APPROVAL_STATUS


def test_metric_regexes_match_the_train_steps_epoch_line() -> None:
    values = {"epoch": 3, "train_loss": 0.4123, "train_acc": 0.8765, "val_acc": 0.9321, "lr": 0.0125,
              "img_per_s": 951.5, "seconds": 12.25}
    line = f"INFO gtsrb.train {epoch_line(values, epochs=9, eta_s=75.0, val_on_training_data=True)}"
    assert line.startswith("INFO gtsrb.train epoch=3/9 train_loss=0.4123 ")
    assert line.endswith("val_acc=0.9321 val_on=training_data lr=0.0125 img_per_s=951.5 seconds=12.25 eta=1m15s")
    by_field = {"train:loss": "train_loss", "train:accuracy": "train_acc", "validation:accuracy": "val_acc",
                "train:learning_rate": "lr", "train:images_per_second": "img_per_s", "train:epoch_seconds": "seconds"}
    assert set(by_field.values()) <= set(EPOCH_FIELDS)
    for metric in METRIC_DEFINITIONS:
        match = re.search(metric["Regex"], line)
        assert match, metric
        assert float(match.group(1)) == pytest.approx(values[by_field[metric["Name"]]], rel=1e-5)


def test_metric_regexes_match_nothing_but_epoch_lines() -> None:
    # The lines a run logs besides epoch lines: the hyperparameters (lr=...), batch lines (batch_lr=...).
    hp_line = hyperparameters_line(Hyperparameters.from_mapping({}).to_dict())
    batch_line = "epoch=1/9 batch=10/50 batch_lr=0.05"
    assert " lr=" in hp_line
    for metric in METRIC_DEFINITIONS:
        assert not re.search(metric["Regex"], hp_line) and not re.search(metric["Regex"], batch_line), metric


def test_builds_with_sockets_blocked_no_telemetry_and_spot_off(no_network: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from sagemaker.core.telemetry import telemetry_logging

    from pipelines.sagemaker.definition import get_pipeline

    sent: list = []
    monkeypatch.setattr(telemetry_logging, "_send_telemetry_request", lambda *args, **kwargs: sent.append(args))
    definition = json.loads(get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, use_spot="false").definition())
    assert sent == []  # ModelTrainer.train and ModelBuilder.register emit telemetry unless switched off
    assert telemetry_logging._send_telemetry_request is not None and "SAGEMAKER_VALIDATE_ROLE" not in os.environ
    args = steps_by_name(definition)[graph.TRAIN.name]["Arguments"]
    assert not args.get("EnableManagedSpotTraining")
    assert "MaxWaitTimeInSeconds" not in args["StoppingCondition"]  # SageMaker rejects it without spot


@pytest.mark.parametrize("instance_type", ["ml.p5.48xlarge", "ml.p5en.48xlarge", "ml.p6-b200.48xlarge", "ml.m5.xlarge", "ml.p2.xlarge"])
def test_guard_refuses_training_instances_the_image_cannot_run(no_network: None, instance_type: str) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    with pytest.raises(StepError, match=rf"{re.escape(instance_type)} cannot run the training image.*ml\.g5.*ml\.p4d"):
        get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, training_instance_type=instance_type)


def test_guard_accepts_supported_gpus_and_the_parameter_default_follows(no_network: None) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    pipeline = get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, training_instance_type="ml.g6e.2xlarge")
    assert {p.name: p.default_value for p in pipeline.parameters}["TrainingInstanceType"] == "ml.g6e.2xlarge"


def test_kms_keys_reach_every_job(no_network: None) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    volume, output = "arn:aws:kms:eu-west-1:123456789012:key/volume", "arn:aws:kms:eu-west-1:123456789012:key/output"
    pipeline = get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG, training_instance_type="ml.p3.2xlarge",
                            volume_kms_key=volume, output_kms_key=output)
    steps = steps_by_name(json.loads(pipeline.definition()))
    training = steps[graph.TRAIN.name]["Arguments"]
    assert (training["ResourceConfig"]["VolumeKmsKeyId"], training["OutputDataConfig"]["KmsKeyId"]) == (volume, output)
    for spec in (graph.PREPARE, graph.EVALUATE):
        args = steps[spec.name]["Arguments"]
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == volume
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == output


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"volume_kms_key": "key-1"}, r"volume_kms_key cannot be used with training instance type ml\.g5\.xlarge"),
        ({"bogus": 1}, r"unexpected keyword argument 'bogus'.*accepted: region, role"),
        ({"role": "MyRole"}, r"not an IAM role ARN"),
        ({"max_run_hours": "5", "max_wait_hours": "2"}, r"max_wait_hours=2 must be >= max_run_hours=5"),
        ({"input_data_url": "/data/gtsrb"}, r"must be an s3:// URI"),
        ({"image_tag": "latest"}, r"image_tag='latest' is not an immutable reference"),
        ({"image_account": "12345"}, r"not a 12-digit AWS account id"),
        ({"accuracy_threshold": "95"}, r"accuracy_threshold='95' must be an accuracy between 0 and 1"),
    ],
)
def test_bad_kwargs_fail_with_one_clear_sentence(no_network: None, kwargs: dict, message: str) -> None:
    from pipelines.sagemaker.definition import get_pipeline

    with pytest.raises(StepError, match=message):
        get_pipeline(**{"region": REGION, "role": ROLE, "image_tag": IMAGE_TAG, **kwargs})


def test_get_pipeline_definition_cli_writes_json(no_network: None, tmp_path) -> None:
    from pipelines.sagemaker import get_pipeline_definition

    out = tmp_path / "out" / "definition.json"
    kwargs = json.dumps({"region": REGION, "role": ROLE, "image_tag": IMAGE_TAG, "pipeline_name": "cli-test"})
    with pytest.raises(SystemExit) as exited:
        get_pipeline_definition.main(["--kwargs", kwargs, "--file-name", str(out)])
    assert exited.value.code == 0
    written = json.loads(out.read_text())
    assert [s["Name"] for s in written["Steps"]] == list(graph.STEP_ORDER)


@pytest.mark.parametrize(("kwargs", "message"), [("{not json", "--kwargs is not valid JSON"), ("[1]", "--kwargs must be a JSON object")])
def test_get_pipeline_definition_cli_bad_kwargs_exit_1(no_network: None, capsys, kwargs: str, message: str,
                                                      tmp_path, monkeypatch) -> None:
    from pipelines.sagemaker import get_pipeline_definition

    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))  # where a step would write its failure file
    with pytest.raises(SystemExit) as exited:
        get_pipeline_definition.main(["--kwargs", kwargs])
    assert exited.value.code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "output").exists()  # a CI tool leaves no failure file behind


@pytest.mark.slow
def test_make_definition_renders_without_credentials(tmp_path) -> None:
    """`make definition` in a fresh process with no AWS credentials or config at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_EC2_METADATA_DISABLED="true")
    out = tmp_path / "definition.json"
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "definition", "REGION=eu-central-1", "TAG=fedcba9",
         f"DEFINITION={out}"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gtsrb-mxnet-gpu:fedcba9" in out.read_text() and "eu-central-1" in out.read_text()


def test_definition_is_deterministic_so_upserts_keep_the_step_cache(no_network: None, offline_definition: dict) -> None:
    """No timestamp or generated job name in the definition: re-upserting an unchanged pipeline
    must not invalidate PrepareData's cache (sagemaker-python-sdk#2736)."""
    from pipelines.sagemaker.definition import get_pipeline

    again = json.loads(get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG).definition())
    assert again == offline_definition
