"""The SageMaker resources of a stage: names, tags, and the Model/EndpointConfig/Endpoint calls.

Names are derived, not stored: `<endpoint>-v<version>-<fingerprint>` for both the Model and the
EndpointConfig, where the fingerprint covers everything that shapes them (package, role, instance
type and count, keys, data capture). So redeploying what already serves finds the same name and
changes nothing, and anything this tool made for an endpoint starts with `<endpoint>-v`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from pipelines.deploy.errors import EXIT_DEPLOY_FAILED, DeployError, call, error_code
from pipelines.deploy.packages import Package
from pipelines.deploy.stage_config import StageConfig

PROJECT = "gtsrb"
VARIANT_NAME = "AllTraffic"  # the one production variant, named as SageMaker's examples name it
MAX_NAME = 63  # SageMaker's limit on model, endpoint-config and endpoint names
# SageMaker's bounds on the blue/green MaximumExecutionTimeoutInSeconds.
MIN_UPDATE_TIMEOUT_S, MAX_UPDATE_TIMEOUT_S = 600, 14400


@dataclass(frozen=True)
class Target:
    """What one deployment puts behind an endpoint."""

    endpoint: str
    stage: str
    package: Package
    role: str
    config: StageConfig
    git_sha: str

    @property
    def resource_name(self) -> str:
        """Name of the Model and of the EndpointConfig of this target."""
        shaping = {"package": self.package.arn, "role": self.role, **asdict(self.config)}
        for key in ("rollback_alarms", "alarm_5xx_errors", "alarm_model_latency_ms", "bake_seconds", "wait_minutes",
                    "endpoint_name", "model_package_group"):
            shaping.pop(key)  # how we roll out, not what serves
        digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.endpoint}-v{self.package.version}-{digest}"

    @property
    def tags(self) -> list[dict[str, str]]:
        """Tags of every resource: project, stage, package version and ARN, git SHA."""
        values = {"project": PROJECT, "stage": self.stage, "model-package-version": str(self.package.version),
                  "model-package-arn": self.package.arn, "git-sha": self.git_sha}
        return [{"Key": k, "Value": v} for k, v in values.items()]


def prefix_of(endpoint: str) -> str:
    """The name prefix of every Model and EndpointConfig made for `endpoint`."""
    return f"{endpoint}-v"


def describe_endpoint(sm, endpoint: str) -> dict | None:
    """DescribeEndpoint, or None when the endpoint does not exist."""
    try:
        return sm.describe_endpoint(EndpointName=endpoint)
    except ClientError as err:
        if error_code(err) == "ValidationException":  # "Could not find endpoint"
            return None
        raise


def create_model(sm, target: Target) -> None:
    """A Model of the package, run as the execution role, without network access."""
    call("CreateModel", sm.create_model, ModelName=target.resource_name, ExecutionRoleArn=target.role,
         PrimaryContainer={"ModelPackageName": target.package.arn}, EnableNetworkIsolation=True, Tags=target.tags)


def create_endpoint_config(sm, target: Target) -> None:
    """An EndpointConfig: one variant of the model on the stage's instances (+ data capture, keys)."""
    config = target.config
    variant = {"VariantName": VARIANT_NAME, "ModelName": target.resource_name, "InstanceType": config.instance_type,
               "InitialInstanceCount": config.initial_instance_count, "InitialVariantWeight": 1.0}
    extra: dict = {}
    if config.volume_kms_key:
        extra["KmsKeyId"] = config.volume_kms_key
    if config.data_capture_s3_uri:
        extra["DataCaptureConfig"] = {
            "EnableCapture": True, "InitialSamplingPercentage": config.data_capture_percentage,
            "DestinationS3Uri": config.data_capture_s3_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            **({"KmsKeyId": config.data_capture_kms_key} if config.data_capture_kms_key else {}),
        }
    call("CreateEndpointConfig", sm.create_endpoint_config, EndpointConfigName=target.resource_name,
         ProductionVariants=[variant], Tags=target.tags, **extra)


def deployment_config(config: StageConfig, alarms: list[str]) -> dict:
    """Blue/green, all at once, baked for bake_seconds; SageMaker rolls back on the alarms or at the limit."""
    timeout = int(min(max(config.wait_minutes * 60, MIN_UPDATE_TIMEOUT_S), MAX_UPDATE_TIMEOUT_S))
    deployment: dict = {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": config.bake_seconds},
        "TerminationWaitInSeconds": config.bake_seconds,
        "MaximumExecutionTimeoutInSeconds": timeout,
    }}
    if alarms:
        deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return deployment


def create_endpoint(sm, target: Target) -> None:
    """CreateEndpoint on the target's config."""
    call("CreateEndpoint", sm.create_endpoint, EndpointName=target.endpoint, EndpointConfigName=target.resource_name,
         Tags=target.tags)


def update_endpoint(sm, endpoint: str, config_name: str, config: StageConfig, alarms: list[str]) -> None:
    """UpdateEndpoint to `config_name` with blue/green: the old fleet serves until the new one is ready."""
    call("UpdateEndpoint", sm.update_endpoint, EndpointName=endpoint, EndpointConfigName=config_name,
         RetainAllVariantProperties=False, DeploymentConfig=deployment_config(config, alarms))


def models_of(sm, config_name: str) -> list[str]:
    """The model names of an endpoint config (empty when it is gone)."""
    try:
        described = sm.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as err:
        if error_code(err) == "ValidationException":
            return []
        raise
    return [v["ModelName"] for v in described["ProductionVariants"]]


def delete_quietly(step: str, fn, /, **kwargs) -> bool:
    """Delete one resource; a missing one is fine (True if something was deleted)."""
    try:
        fn(**kwargs)
        return True
    except ClientError as err:
        if error_code(err) == "ValidationException":  # "Could not find ..." (gone already)
            return False
        raise DeployError(EXIT_DEPLOY_FAILED, f"{step} failed: {err}") from None


def delete_config_and_models(sm, config_name: str) -> None:
    """Delete an endpoint config (one of ours) and the models it names."""
    for model in models_of(sm, config_name):
        delete_quietly("DeleteModel", sm.delete_model, ModelName=model)
    delete_quietly("DeleteEndpointConfig", sm.delete_endpoint_config, EndpointConfigName=config_name)


def delete_model(sm, name: str) -> None:
    """Delete a model (gone already is fine)."""
    delete_quietly("DeleteModel", sm.delete_model, ModelName=name)


def leftovers(sm, endpoint: str) -> tuple[list[str], list[str]]:
    """(endpoint configs, models) this tool made for `endpoint`, by name prefix."""
    prefix = prefix_of(endpoint)
    configs = call("ListEndpointConfigs", sm.list_endpoint_configs, NameContains=prefix, MaxResults=100)["EndpointConfigs"]
    models = call("ListModels", sm.list_models, NameContains=prefix, MaxResults=100)["Models"]
    return ([c["EndpointConfigName"] for c in configs if c["EndpointConfigName"].startswith(prefix)],
            [m["ModelName"] for m in models if m["ModelName"].startswith(prefix)])
