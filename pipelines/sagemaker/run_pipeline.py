"""`run-pipeline`: create or update the SageMaker pipeline (with tags), optionally start it and wait.

    run-pipeline --role-arn arn:aws:iam::123456789012:role/X \
        --kwargs '{"region": "eu-west-1", "role": "arn:...", "image_tag": "abc1234"}' \
        --tags '[{"Key": "project", "Value": "gtsrb"}]' \
        [--start [--recipe recipes/cpu.yaml] [--parameters '{"Epochs": 5}'] [--wait-minutes 180]]

Exit codes: 0 upserted (and, when waited for, the execution succeeded); 1 bad input or an AWS
error; 2 the execution failed or was stopped; 3 still running when --wait-minutes ran out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from sagemaker.core.helper.iam_role_resolver import RoleValidationError

from gtsrb.common.failure import StepError
from gtsrb.train.hyperparameters import Hyperparameters
from pipelines import graph, recipes
from pipelines.instances import (
    check_training_instance_count,
    check_training_instance_type,
    check_volume_kms_key,
    has_instance_storage,
)
from pipelines.sagemaker import preflight
from pipelines.sagemaker.cli_args import add_pipeline_args, build_pipeline, parse_json, quiet_sdk, run_tool
from pipelines.sagemaker.settings import HYPERPARAMETER_OF, as_number

EXIT_EXECUTION_FAILED, EXIT_STILL_RUNNING = 2, 3
TERMINAL = ("Succeeded", "Failed", "Stopped")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The template's flags (--module-name, --role-arn, --tags, --kwargs, --description) and ours."""
    parser = argparse.ArgumentParser(prog="run-pipeline", description=__doc__.splitlines()[0])
    add_pipeline_args(parser)
    parser.add_argument("-role-arn", "--role-arn", default=None, help="role the pipeline runs as (default: kwargs role)")
    parser.add_argument("-tags", "--tags", default="[]", help='JSON list of {"Key": ..., "Value": ...}')
    parser.add_argument("-description", "--description", default=None)
    parser.add_argument("--start", action="store_true", help="start an execution after the upsert")
    parser.add_argument("--parameters", default="{}", help='execution parameter overrides as JSON, e.g. {"Epochs": 5}')
    parser.add_argument("--recipe", default=None, help="hyperparameters from a recipe file (as make demo RECIPE=); --parameters wins")
    parser.add_argument("--wait-minutes", type=float, default=0.0, help="wait this long for the execution (0 = do not wait)")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="seconds between status checks while waiting")
    return parser.parse_args(argv)


def check_overrides(pipeline, overrides: dict) -> None:
    """Refuse unknown names, an unusable training instance type or a bad hyperparameter now, not
    an hour into the execution."""
    known = [p.name for p in pipeline.parameters]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise StepError(f"--parameters: unknown pipeline parameter {unknown[0]!r}; known: {', '.join(known)}.")
    keys = volume_kms_keys(json.loads(pipeline.definition()))
    if "TrainingInstanceType" in overrides:
        check_training_instance_type(str(overrides["TrainingInstanceType"]))
        check_volume_kms_key(str(overrides["TrainingInstanceType"]), keys["Training"])
    if "ProcessingInstanceType" in overrides and keys["Processing"] and has_instance_storage(str(overrides["ProcessingInstanceType"])):
        raise StepError(f"--parameters: ProcessingInstanceType={overrides['ProcessingInstanceType']} has instance "
                        "storage, which refuses the pipeline's volume_kms_key; choose an EBS type (e.g. ml.m5.xlarge).")
    if "AccuracyThreshold" in overrides and not 0 <= as_number("AccuracyThreshold", overrides["AccuracyThreshold"]) <= 1:
        raise StepError(f"--parameters: AccuracyThreshold={overrides['AccuracyThreshold']!r} must be between 0 and 1.")
    # what the training job will receive: the definition's fixed hyperparameters and the parameters' values
    values = {**fixed_hyperparameters(json.loads(pipeline.definition())), **hyperparameter_values(pipeline, overrides)}
    typed = Hyperparameters.from_mapping(values)  # raises StepError naming the key
    defaults = {p.name: p.default_value for p in pipeline.parameters}
    count = overrides.get("TrainingInstanceCount", defaults.get("TrainingInstanceCount", 1))
    check_training_instance_count(int(as_number("TrainingInstanceCount", count)), typed)


def fixed_hyperparameters(definition: dict) -> dict[str, str]:
    """The training step's hyperparameters that no pipeline parameter sets (the settings' fixed ones)."""
    train = next(step for step in definition["Steps"] if step["Name"] == graph.TRAIN.name)
    return {key: value for key, value in train["Arguments"].get("HyperParameters", {}).items() if isinstance(value, str)}


def hyperparameter_values(pipeline, overrides: dict) -> dict[str, str]:
    """What the training job will receive: each hyperparameter parameter's default, overridden
    (checked at every upsert, so a definition never carries values the train step refuses)."""
    defaults = {p.name: p.default_value for p in pipeline.parameters if p.name in HYPERPARAMETER_OF}
    return {HYPERPARAMETER_OF[name]: str(value) for name, value in {**defaults, **overrides}.items() if name in HYPERPARAMETER_OF}


def with_preset(overrides: dict) -> dict:
    """A Preset override brings its preset's values for the hyperparameter parameters not given:
    the pipeline passes every parameter explicitly, and explicit values win over a preset."""
    if "Preset" not in overrides:
        return overrides
    base = Hyperparameters.for_preset(str(overrides["Preset"]))  # a StepError naming an unknown preset
    return {**{name: getattr(base, field) for name, field in HYPERPARAMETER_OF.items()}, **overrides}


def recipe_parameters(path: str) -> dict:
    """A recipe file as pipeline parameters; a value that only a new definition could carry
    (a hyperparameter that is not a pipeline parameter and differs from the recipe's preset) fails."""
    hp = Hyperparameters.from_mapping(recipes.load(path))
    base = Hyperparameters.for_preset(hp.preset)
    exposed = set(HYPERPARAMETER_OF.values())
    stuck = [f"{k}={v}" for k, v in hp.to_dict().items() if k not in exposed and v != getattr(base, k)]
    if stuck:
        raise StepError(
            f"--recipe {path}: {', '.join(stuck)} differ(s) from the {hp.preset} preset but the pipeline's parameters are only "
            f"{', '.join(HYPERPARAMETER_OF)}; change those, or the preset in src/train/hyperparameters.py."
        )
    return {name: getattr(hp, field) for name, field in HYPERPARAMETER_OF.items()}


def volume_kms_keys(definition: dict) -> dict[str, str | None]:
    """The volume KMS key the definition gives its Training and Processing jobs (None: none)."""
    keys: dict[str, str | None] = {"Training": None, "Processing": None}
    for step in definition.get("Steps", []):
        args = step.get("Arguments", {})
        if step.get("Type") == "Training":
            keys["Training"] = args.get("ResourceConfig", {}).get("VolumeKmsKeyId")
        elif step.get("Type") == "Processing":
            keys["Processing"] = keys["Processing"] or args.get("ProcessingResources", {}).get("ClusterConfig", {}).get("VolumeKmsKeyId")
    return keys


def check_tags(tags: list) -> list[dict[str, str]]:
    """Tags as SageMaker wants them: a list of {"Key": str, "Value": str}."""
    for tag in tags:
        if not isinstance(tag, dict) or set(tag) != {"Key", "Value"}:
            raise StepError(f'--tags: every tag must be {{"Key": ..., "Value": ...}}, got {tag!r}.')
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags]


def aws_call(what: str, call: Callable, *args, **kwargs):
    """Run an AWS call; an AWS error becomes one sentence naming what was being done."""
    try:
        return call(*args, **kwargs)
    except (ClientError, BotoCoreError, RoleValidationError) as err:
        raise StepError(f"{what} failed: {err}") from None


@dataclass(frozen=True)
class Outcome:
    """How an execution ended (or not) within the wait."""

    status: str
    failure_reason: str = ""


def wait_for(client, execution_arn: str, wait_s: float, poll_s: float, clock=time.monotonic, sleep=time.sleep) -> Outcome:
    """Poll DescribePipelineExecution until a terminal status or the deadline."""
    deadline = clock() + wait_s
    while True:
        described = aws_call("DescribePipelineExecution", client.describe_pipeline_execution, PipelineExecutionArn=execution_arn)
        status = described["PipelineExecutionStatus"]
        if status in TERMINAL or clock() >= deadline:
            return Outcome(status, described.get("FailureReason") or "")
        print(f"execution status={status}", flush=True)
        sleep(max(0.0, min(poll_s, deadline - clock())))


def failed_steps(client, execution_arn: str) -> list[str]:
    """`StepName: FailureReason` of each failed step (empty if the service cannot list them)."""
    try:
        steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]
    except (ClientError, BotoCoreError):
        return []
    return [f"{s['StepName']}: {s.get('FailureReason', '')}" for s in steps if s.get("StepStatus") == "Failed"]


def report(client, execution_arn: str, outcome: Outcome, wait_minutes: float) -> int:
    """Print how the execution ended; return the exit code."""
    print(f"execution status={outcome.status} arn={execution_arn}")
    if outcome.status == "Succeeded":
        return 0
    if outcome.status not in TERMINAL:
        print(f"ERROR: the execution is still {outcome.status} after {wait_minutes:g} minutes; it keeps running.", file=sys.stderr)
        return EXIT_STILL_RUNNING
    details = "; ".join(failed_steps(client, execution_arn)) or outcome.failure_reason or "no reason given"
    print(f"ERROR: the pipeline execution {outcome.status.lower()}: {details}", file=sys.stderr)
    return EXIT_EXECUTION_FAILED


def model_package_groups(definition: str) -> list[str]:
    """ModelPackageGroupName of every RegisterModel step, inside conditions too."""
    found, pending = [], list(json.loads(definition)["Steps"])
    while pending:
        step = pending.pop()
        arguments = step.get("Arguments", {})
        if step.get("Type") == "RegisterModel":
            found.append(arguments["ModelPackageGroupName"])
        pending += arguments.get("IfSteps", []) + arguments.get("ElseSteps", [])
    return found


def ensure_model_package_group(client, name: str, tags: list[dict[str, str]]) -> bool:
    """Create the group RegisterModel writes to unless it exists (first run); True if created."""
    try:
        client.describe_model_package_group(ModelPackageGroupName=name)
        return False
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ValidationException":  # "does not exist"
            raise StepError(f"DescribeModelPackageGroup {name} failed: {err}") from None
    aws_call("CreateModelPackageGroup", client.create_model_package_group, ModelPackageGroupName=name,
             ModelPackageGroupDescription="GTSRB traffic-sign classifiers registered by the pipeline", Tags=tags)
    return True


def upsert_and_start(argv: list[str] | None = None) -> int:
    """Upsert, then optionally start and wait; return the exit code."""
    args = parse_args(argv)
    quiet_sdk()
    tags = check_tags(parse_json("--tags", args.tags, list))
    overrides = with_preset({**(recipe_parameters(args.recipe) if args.recipe else {}),
                             **parse_json("--parameters", args.parameters, dict)})
    pipeline = build_pipeline(args.module_name, args.kwargs)
    check_overrides(pipeline, overrides)
    if args.start:  # starting uses training and processing quota: refuse before anything changes
        preflight.check_pipeline(pipeline, overrides)
    role_arn = args.role_arn or parse_json("--kwargs", args.kwargs, dict).get("role")
    upserted = aws_call("UpsertPipeline", pipeline.upsert, role_arn=role_arn, description=args.description, tags=tags)
    print(f"upserted pipeline={pipeline.name} arn={upserted['PipelineArn']}")
    client = pipeline.sagemaker_session.sagemaker_client
    for group in model_package_groups(pipeline.definition()):
        created = ensure_model_package_group(client, group, tags)
        print(f"model package group={group}{' (created)' if created else ''}")
    if not args.start:
        return 0
    execution = aws_call("StartPipelineExecution", pipeline.start, parameters=overrides or None)
    print(f"started execution arn={execution.arn}")
    if args.wait_minutes <= 0:
        return 0
    outcome = wait_for(client, execution.arn, args.wait_minutes * 60, args.poll_seconds)
    return report(client, execution.arn, outcome, args.wait_minutes)


def run(argv: list[str] | None = None) -> None:
    """upsert_and_start; a failed or unfinished execution exits with its own code (2 or 3)."""
    code = upsert_and_start(argv)
    if code:
        raise SystemExit(code)  # not an Exception: run_tool lets it through unchanged


def main(argv: list[str] | None = None) -> None:
    """Console script entry point (exit codes in the module docstring)."""
    sys.exit(run_tool(partial(run, argv)))


if __name__ == "__main__":
    main()
