"""The SageMaker pipeline: `get_pipeline(**kwargs)` builds it without touching AWS.

    PrepareData (cpu image, cached) -> TrainModel (gpu image, spot) -> EvaluateModel (cpu image)
      -> CheckAccuracy: accuracy >= AccuracyThreshold ? RegisterModel : AccuracyBelowThreshold (Fail)

The kwargs are those the SageMaker MLOps template's codebuild-buildspec passes (region, role,
default_bucket, pipeline_name, model_package_group_name, base_job_prefix, sagemaker_project_name)
plus ours (image_tag, use_spot, ...; see pipelines.sagemaker.settings.from_kwargs). Building needs no
credentials and makes no AWS call: no upload, no role check, no bucket probe, no telemetry.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gtsrb.common.failure import StepError
from pipelines.sagemaker import settings as s

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline

DEFAULT_ACCURACY_THRESHOLD = 0.95  # the seed baseline (built-in ResNet-18) reached 94.7%


@contextlib.contextmanager
def offline_sdk(region: str) -> Iterator[None]:
    """Let the SDK build steps without AWS: a region for its import-time client, no IAM role
    check, no telemetry (its background thread calls STS and an S3 URL for every train/register).

    Both are switched off only while building; upsert and start behave as the SDK does (role
    validated; telemetry per the user's SageMaker config, TelemetryOptOut).
    """
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    from sagemaker.core.telemetry import telemetry_logging  # imports without a region

    previous = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    send = telemetry_logging._send_telemetry_request  # private, but the SDK is pinned exactly
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    telemetry_logging._send_telemetry_request = _no_telemetry
    try:
        yield
    finally:
        telemetry_logging._send_telemetry_request = send
        if previous is None:
            os.environ.pop("SAGEMAKER_VALIDATE_ROLE", None)
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = previous


def _no_telemetry(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for the SDK's telemetry sender while the pipeline is built."""


def get_pipeline(
    sagemaker_project_name: str | None = None,  # unused: passed by the MLOps template; tags carry it
    accuracy_threshold: float | str = DEFAULT_ACCURACY_THRESHOLD,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline object from build-time kwargs (see pipelines.sagemaker.settings.from_kwargs).

    Building never calls AWS; upsert/start on the returned pipeline use a boto3 session of
    `region` (AWS_ENDPOINT_URL redirects it, e.g. to a moto server in tests).
    """
    try:
        settings = s.from_kwargs(**kwargs)
    except TypeError as err:  # an unknown kwarg: name it and what is accepted
        raise StepError(f"get_pipeline: {err}; accepted: {', '.join(accepted_kwargs())}.") from None
    threshold = s.as_number("accuracy_threshold", accuracy_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise StepError(f"accuracy_threshold={accuracy_threshold!r} must be an accuracy between 0 and 1.")
    with offline_sdk(settings.region):
        import boto3

        from pipelines.sagemaker import step_builders

        session = boto3.Session(region_name=settings.region)
        return step_builders.build_pipeline(settings, threshold, session)


def accepted_kwargs() -> list[str]:
    """Every kwarg get_pipeline accepts (for error messages and --help)."""
    import inspect

    own = ["sagemaker_project_name", "accuracy_threshold"]
    return [*inspect.signature(s.from_kwargs).parameters, *own]
