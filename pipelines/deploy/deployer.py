"""The order of a deployment: pick, check, create, roll out, wait, smoke-test, clean up or roll back.

A new endpoint that fails is deleted with everything made for it. An update goes blue/green
(the previous fleet serves until the new one is InService); if it, or the smoke test after it,
fails, the endpoint goes back to the previous config and the new config and model are deleted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.deploy import alarms, packages, resources, smoke
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_DEPLOY_FAILED, DeployError, as_bad_input, call
from pipelines.deploy.packages import Package
from pipelines.deploy.resources import Target
from pipelines.deploy.stage_config import StageConfig
from pipelines.instances import check_serving_instance_type
from pipelines.sagemaker import preflight

# Statuses SageMaker passes through on its way to InService / Failed.
TRANSITIONAL = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


@dataclass(frozen=True)
class Clients:
    """The AWS clients deploy-model uses."""

    sagemaker: object
    runtime: object
    cloudwatch: object
    quotas: object  # service-quotas: the preflight


@dataclass(frozen=True)
class Request:
    """A checked deployment request (the CLI resolves flags and the stage config into it)."""

    stage: str
    config: StageConfig
    role: str
    region: str
    git_sha: str
    smoke_image: Path
    package_arn: str | None = None
    poll_s: float = 30.0


def endpoint_name(stage: str, config: StageConfig) -> str:
    """The stage's endpoint: the config's endpoint_name, else <group>-<stage>."""
    return config.endpoint_name or f"{config.model_package_group}-{stage}"


def choose_package(sm, request: Request) -> Package:
    """--model-package-arn when given, else the newest Approved version of the stage's group."""
    if request.package_arn:
        return packages.by_arn(sm, request.package_arn)
    return packages.newest_approved(sm, request.config.model_package_group)


def check_target(target: Target) -> None:
    """Refuse an instance type the package's image (or its own list) cannot serve on, and long names."""
    instance_type = target.config.instance_type
    as_bad_input(check_serving_instance_type, target.package.variant, instance_type)
    if target.package.instance_types and instance_type not in target.package.instance_types:
        raise DeployError(EXIT_BAD_INPUT, f"instance type {instance_type} is not among the types model package "
                          f"{target.package.arn} supports ({', '.join(target.package.instance_types)}).")
    if len(target.resource_name) > resources.MAX_NAME:
        raise DeployError(EXIT_BAD_INPUT, f"endpoint name {target.endpoint!r} is too long: {target.resource_name!r} "
                          f"exceeds SageMaker's {resources.MAX_NAME} characters; set a shorter endpoint_name.")


def check_quota(quotas, target: Target, updating: bool, region: str) -> None:
    """Preflight: the endpoint-usage quota covers the fleet (twice during a blue/green update)."""
    needs = preflight.endpoint_needs(target.config.instance_type, target.config.initial_instance_count, updating)
    as_bad_input(preflight.check, quotas, needs, region)


def plan(sm, request: Request) -> Target:
    """The checked target of this deployment."""
    package = choose_package(sm, request)
    target = Target(endpoint_name(request.stage, request.config), request.stage, package, request.role,
                    request.config, request.git_sha)
    check_target(target)
    return target


def deploy(clients: Clients, request: Request) -> Target:
    """Deploy the request's version to its stage; unchanged when it already serves. Raises DeployError."""
    sm = clients.sagemaker
    smoke.read_image(request.smoke_image)  # a bad smoke image is bad input, found before any change
    target = plan(sm, request)
    previous = call("DescribeEndpoint", resources.describe_endpoint, sm=sm, endpoint=target.endpoint)
    if previous is not None and previous["EndpointStatus"] != "InService":
        raise DeployError(EXIT_DEPLOY_FAILED, f"endpoint {target.endpoint} is {previous['EndpointStatus']}: wait for it "
                          f"to be InService, or remove it with make undeploy STAGE={request.stage}.")
    if previous is not None and previous["EndpointConfigName"] == target.resource_name:
        print(f"unchanged: endpoint {target.endpoint} already serves version {target.package.version} "
              f"({target.resource_name}); nothing to do")
        return target
    previous_config = previous["EndpointConfigName"] if previous else None
    check_quota(clients.quotas, target, updating=previous is not None, region=request.region)
    try:
        rollback_on = alarms.put_alarms(clients.cloudwatch, target)
        resources.create_model(sm, target)
        resources.create_endpoint_config(sm, target)
        roll_out(sm, target, previous_config, rollback_on, request.poll_s)
        predictions = smoke.smoke_test(clients.runtime, target.endpoint, request.smoke_image)
    except DeployError as err:
        raise DeployError(err.code, f"{err} {roll_back(clients, target, previous_config, request.poll_s)}") from None
    if previous_config:
        resources.delete_config_and_models(sm, previous_config)
    report(target, request, predictions, previous_config)
    return target


def roll_out(sm, target: Target, previous_config: str | None, rollback_on: list[str], poll_s: float) -> None:
    """Create or (blue/green, rolled back on the alarms) update the endpoint, wait, check it serves the new config."""
    if previous_config is None:
        resources.create_endpoint(sm, target)
    else:
        resources.update_endpoint(sm, target.endpoint, target.resource_name, target.config, rollback_on)
    print(f"{'updating' if previous_config else 'creating'} endpoint={target.endpoint} config={target.resource_name}", flush=True)
    described = wait_for_endpoint(sm, target.endpoint, target.config.wait_minutes * 60, poll_s)
    status, reason = described["EndpointStatus"], described.get("FailureReason") or "no reason given"
    if status in TRANSITIONAL:
        raise DeployError(EXIT_DEPLOY_FAILED, f"wait: endpoint {target.endpoint} is still {status} after "
                          f"{target.config.wait_minutes:g} minutes (wait_minutes).")
    if status != "InService":
        raise DeployError(EXIT_DEPLOY_FAILED, f"endpoint {target.endpoint} is {status}: {reason}.")
    if described["EndpointConfigName"] != target.resource_name:
        raise DeployError(EXIT_DEPLOY_FAILED, f"update: SageMaker rolled endpoint {target.endpoint} back to "
                          f"{described['EndpointConfigName']} ({reason}).")


def roll_back(clients: Clients, target: Target, previous_config: str | None, poll_s: float) -> str:
    """Undo a failed deployment as far as possible; one sentence saying what serves now."""
    sm = clients.sagemaker
    try:
        if previous_config is None:
            resources.delete_quietly("DeleteEndpoint", sm.delete_endpoint, EndpointName=target.endpoint)
            resources.delete_config_and_models(sm, target.resource_name)
            resources.delete_model(sm, target.resource_name)  # when the config was never made
            alarms.delete_alarms(clients.cloudwatch, target.endpoint, target.config)
            return f"Removed endpoint {target.endpoint} and the model, config and alarms made for it."
        return revert_update(sm, target, previous_config, poll_s)
    except (DeployError, ClientError, BotoCoreError) as err:
        return f"Rolling back failed too ({err}): check endpoint {target.endpoint} in the console."


def revert_update(sm, target: Target, previous_config: str, poll_s: float) -> str:
    """Put the endpoint back on previous_config if it moved, then delete the new config and model."""
    current = sm.describe_endpoint(EndpointName=target.endpoint)
    if current["EndpointStatus"] in TRANSITIONAL:
        return (f"Endpoint {target.endpoint} is still {current['EndpointStatus']}: SageMaker's blue/green keeps "
                f"{previous_config} serving and rolls back at its own time limit.")
    if current["EndpointConfigName"] != previous_config:
        resources.update_endpoint(sm, target.endpoint, previous_config, dataclasses.replace(target.config, bake_seconds=0), [])
        described = wait_for_endpoint(sm, target.endpoint, target.config.wait_minutes * 60, poll_s)
        if described["EndpointConfigName"] != previous_config or described["EndpointStatus"] != "InService":
            return f"Rolling back to {previous_config} did not finish (endpoint {described['EndpointStatus']})."
    resources.delete_config_and_models(sm, target.resource_name)
    resources.delete_model(sm, target.resource_name)
    return f"Rolled back: endpoint {target.endpoint} serves {previous_config} again; the new model and config are removed."


def report(target: Target, request: Request, predictions: list[dict], previous_config: str | None) -> None:
    """What was deployed, what the smoke test saw, and how to call the endpoint."""
    top = predictions[0]
    print(f"deployed stage={target.stage} endpoint={target.endpoint} version={target.package.version} "
          f"instance={target.config.instance_type}*{target.config.initial_instance_count} config={target.resource_name}"
          f"{f' (replaced {previous_config})' if previous_config else ''}")
    print(f"package={target.package.arn} image={target.package.image} git-sha={target.git_sha}")
    print(f"smoke test {request.smoke_image.name}: class_id={top['class_id']} class_name={top['class_name']!r} "
          f"probability={top['probability']:.3f}")
    print(f"invoke: aws sagemaker-runtime invoke-endpoint --region {request.region} --endpoint-name {target.endpoint} "
          f"--content-type {smoke.content_type(request.smoke_image)} --body fileb://{request.smoke_image} /dev/stdout")


def undeploy(clients: Clients, stage: str, config: StageConfig) -> list[str]:
    """Delete the stage's endpoint, its endpoint configs, models and alarms; what was deleted."""
    sm, endpoint = clients.sagemaker, endpoint_name(stage, config)
    deleted = [f"alarm {name}" for name in alarms.delete_alarms(clients.cloudwatch, endpoint, config)]
    if resources.delete_quietly("DeleteEndpoint", sm.delete_endpoint, EndpointName=endpoint):
        deleted.append(f"endpoint {endpoint}")
    configs, models = resources.leftovers(sm, endpoint)
    for name in configs:
        call("DeleteEndpointConfig", sm.delete_endpoint_config, EndpointConfigName=name)
        deleted.append(f"endpoint config {name}")
    for name in models:
        call("DeleteModel", sm.delete_model, ModelName=name)
        deleted.append(f"model {name}")
    return deleted


def wait_for_endpoint(
    sm,
    endpoint: str,
    limit_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll DescribeEndpoint until the status leaves TRANSITIONAL or `limit_s` passes; the last answer."""
    start = clock()
    while True:
        described = call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint)
        status, elapsed = described["EndpointStatus"], clock() - start
        if status not in TRANSITIONAL or elapsed >= limit_s:
            return described
        print(f"endpoint={endpoint} status={status} elapsed={elapsed:.0f}s limit={limit_s:.0f}s", flush=True)
        sleep(max(0.0, min(poll_s, limit_s - elapsed)))
