"""A stage's deployment settings (deploy/<stage>.json), loaded into a checked, typed StageConfig.

Every field of the file is a field of StageConfig with the same name; an unknown field, a value of
the wrong type or out of range fails with one sentence naming the file and the field.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from pipelines import graph
from pipelines.deploy.errors import EXIT_BAD_INPUT, DeployError

CONFIG_DIR = Path("deploy")  # deploy/<stage>.json, relative to the repository root (make's cwd)


@dataclass(frozen=True)
class StageConfig:
    """How one stage (staging, prod, ...) serves the model."""

    instance_type: str  # e.g. ml.m5.xlarge (cpu image) or ml.g5.xlarge (gpu image)
    initial_instance_count: int  # instances behind the endpoint (>= 1)
    endpoint_name: str | None = None  # default: <model_package_group>-<stage>
    model_package_group: str = graph.MODEL_PACKAGE_GROUP  # where Approved versions come from
    execution_role_arn: str | None = None  # the role the model runs as (--role-arn overrides)
    volume_kms_key: str | None = None  # KMS key of the instances' storage volume
    data_capture_s3_uri: str | None = None  # capture requests/answers to this s3:// prefix
    data_capture_kms_key: str | None = None  # KMS key of the captured data (needs the URI)
    data_capture_percentage: int = 100  # share of requests captured
    rollback_alarms: list[str] = field(default_factory=list)  # CloudWatch alarms (yours) that roll an update back
    alarm_5xx_errors: int | None = None  # deploy-model makes an alarm: this many 5XX answers in a minute roll back
    alarm_model_latency_ms: int | None = None  # ... and one on ModelLatency above this for two minutes
    bake_seconds: int = 0  # blue/green: watch the alarms this long before the old fleet goes (needs alarms)
    wait_minutes: float = 30.0  # give up waiting for InService after this long

    def __post_init__(self) -> None:
        """Range checks the types cannot express (the loader names the file)."""
        if self.initial_instance_count < 1:
            raise ValueError("initial_instance_count must be at least 1")
        if not 0 < self.data_capture_percentage <= 100:
            raise ValueError("data_capture_percentage must be in 1..100")
        if not 0 <= self.bake_seconds <= 3600:
            raise ValueError("bake_seconds must be in 0..3600 (SageMaker's limit)")
        if self.wait_minutes <= 0:
            raise ValueError("wait_minutes must be positive")
        if self.data_capture_s3_uri is not None and not self.data_capture_s3_uri.startswith("s3://"):
            raise ValueError("data_capture_s3_uri must be an s3:// URI")
        if self.data_capture_kms_key and not self.data_capture_s3_uri:
            raise ValueError("data_capture_kms_key needs data_capture_s3_uri")
        self.check_rollback()

    def check_rollback(self) -> None:
        """A bake watches alarms: refuse one without alarms, and a wait shorter than the update."""
        if self.bake_seconds == 0:
            return
        if not (self.rollback_alarms or self.alarm_5xx_errors is not None or self.alarm_model_latency_ms is not None):
            raise ValueError(f"bake_seconds={self.bake_seconds} watches nothing without CloudWatch alarms (SageMaker rolls "
                             "back only when an alarm fires): set alarm_5xx_errors and/or alarm_model_latency_ms "
                             "(deploy-model makes the alarms), or rollback_alarms, or bake_seconds 0")
        needed = update_seconds(self.bake_seconds) / 60
        if self.wait_minutes < needed:
            raise ValueError(f"wait_minutes={self.wait_minutes:g} is shorter than a blue/green update with "
                             f"bake_seconds={self.bake_seconds} (new fleet ~{NEW_FLEET_S // 60} min + traffic wait + "
                             f"termination wait, each bake_seconds): set wait_minutes to at least {needed:g}")


# Minutes SageMaker typically needs to start a new fleet of a real-time endpoint (with the image pull).
NEW_FLEET_S = 900


def update_seconds(bake_seconds: int) -> float:
    """How long a blue/green update takes at most before deploy-model may judge it: the new fleet
    starts, the alarms are watched for WaitIntervalInSeconds, the old fleet waits TerminationWaitInSeconds."""
    return NEW_FLEET_S + 2 * bake_seconds


def config_path(stage: str, directory: Path = CONFIG_DIR) -> Path:
    """deploy/<stage>.json."""
    return directory / f"{stage}.json"


def load(path: Path) -> StageConfig:
    """Read and check a stage config; DeployError(EXIT_BAD_INPUT) names the file and the field."""
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise DeployError(EXIT_BAD_INPUT, f"{path}: no such stage config (stages here: {', '.join(known) or 'none'}).")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DeployError(EXIT_BAD_INPUT, f"{path}: not valid JSON ({err}).") from None
    if not isinstance(data, dict):
        raise DeployError(EXIT_BAD_INPUT, f"{path}: must be a JSON object of fields.")
    check_fields(path, data)
    if "data_capture_percentage" in data and not data.get("data_capture_s3_uri"):
        raise DeployError(EXIT_BAD_INPUT, f"{path}: data_capture_percentage captures nothing without data_capture_s3_uri: "
                          "add data_capture_s3_uri (s3://bucket/prefix) or remove data_capture_percentage.")
    try:
        return StageConfig(**data)
    except ValueError as err:
        raise DeployError(EXIT_BAD_INPUT, f"{path}: {err}.") from None


def check_fields(path: Path, data: dict) -> None:
    """Refuse unknown, missing and wrong-typed fields, naming the first one."""
    hints = typing.get_type_hints(StageConfig)
    known = [f.name for f in fields(StageConfig)]
    for name, value in data.items():
        if name not in hints:
            raise DeployError(EXIT_BAD_INPUT, f"{path}: unknown field {name!r} (known fields: {', '.join(known)}).")
        if not matches(value, hints[name]):
            raise DeployError(EXIT_BAD_INPUT, f"{path}: field {name!r} must be {type_name(hints[name])}, got {value!r}.")
    for f in fields(StageConfig):
        if f.default is MISSING and f.default_factory is MISSING and f.name not in data:
            raise DeployError(EXIT_BAD_INPUT, f"{path}: missing field {f.name!r} ({type_name(hints[f.name])}).")


def matches(value: object, hint: object) -> bool:
    """Whether a JSON value fits a field type (str, int, float, bool, list[str], X | None)."""
    if isinstance(hint, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(matches(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)  # type: ignore[arg-type]


def type_name(hint: object) -> str:
    """A field type as a reader of the JSON file says it: 'a string or null', 'a list of strings'."""
    if isinstance(hint, types.UnionType):
        return " or ".join(type_name(arg) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return "a list of strings"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}[hint]  # type: ignore[index]
