"""What is fixed when the SageMaker pipeline is built (as opposed to its per-run parameters).

`get_pipeline(**kwargs)` turns the MLOps-template kwargs (region, role, default_bucket, ...) and
ours (image_tag, use_spot, ...) into one checked Settings; the step builders read only this.
Nothing here calls AWS: the account comes from the role ARN, the bucket name from the SDK's own
naming rule, the image URIs from pipelines.images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gtsrb.common.failure import StepError
from gtsrb.common.sagemaker_job import parse_bool
from pipelines import aws, graph, images
from pipelines.instances import check_training_instance_type, check_volume_kms_key

DEFAULT_PIPELINE_NAME = "gtsrb-traffic-signs"
DEFAULT_BASE_JOB_PREFIX = "gtsrb"
DEFAULT_TRAINING_INSTANCE = "ml.g5.xlarge"  # A10G: the cheapest current GPU the image runs on
DEFAULT_PROCESSING_INSTANCE = "ml.m5.xlarge"  # prepare/evaluate are CPU work (im2rec, inference)
DEFAULT_MAX_RUN_HOURS = 4.0  # SageMaker's SDK default is 1 h, too short for a real GTSRB run
DEFAULT_MAX_WAIT_HOURS = 8.0  # spot: waiting for capacity + running, must be >= max run
# Pipeline parameter -> train hyperparameter (the snake_case field of gtsrb.train Hyperparameters).
HYPERPARAMETER_OF: dict[str, str] = {
    "Preset": "preset",
    "Epochs": "epochs",
    "LearningRate": "lr",
    "BatchSize": "batch_size",
    "Model": "model",
    "ImageSize": "image_size",
    "Tta": "tta",
    "MaxTrainImages": "max_train_images",
}


@dataclass(frozen=True)
class Settings:
    """Build-time settings of the SageMaker pipeline, checked by from_kwargs()."""

    region: str
    role: str
    bucket: str
    pipeline_name: str
    model_package_group_name: str
    base_job_prefix: str
    image_registry: str
    image_tag: str
    input_data_url: str
    data_version: str
    training_instance_type: str
    processing_instance_type: str
    use_spot: bool
    max_run_seconds: int
    max_wait_seconds: int
    volume_kms_key: str | None
    output_kms_key: str | None
    # Fixed hyperparameters of every execution (e.g. preset=cpu); they also set the defaults of the
    # hyperparameter pipeline parameters (Epochs, LearningRate, ...), which executions may override.
    hyperparameters: dict[str, str] = field(default_factory=dict)
    # The one switch for the SageMaker SDK's local mode (make sagemaker-local): the training step
    # runs the cpu image (no GPU here) and the model step creates a model instead of registering
    # it (local mode refuses registration steps). Everything else is the definition `make upsert` sends.
    local_mode: bool = False

    @property
    def training_variant(self) -> str:
        """The image variant of the training step: gpu on SageMaker, cpu in local mode."""
        return "cpu" if self.local_mode else "gpu"

    def image(self, variant: str) -> str:
        """Our image URI of a variant (`gpu` trains, `cpu` prepares and evaluates)."""
        return images.image_uri(self.image_registry, variant, self.image_tag)

    @property
    def s3_root(self) -> str:
        """Where every step of every execution writes: s3://bucket/base_job_prefix."""
        return f"s3://{self.bucket}/{self.base_job_prefix}"


def as_bool(name: str, value: object) -> bool:
    """A bool from a bool or a JSON/CLI string ("true", "false", "1", "0")."""
    try:
        return parse_bool(value)
    except ValueError:
        raise StepError(f"{name}={value!r} is not a boolean (use true or false).") from None


def as_number(name: str, value: object) -> float:
    """A float from a number or a JSON/CLI string, or a clear error naming the key."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise StepError(f"{name}={value!r} is not a number.") from None


def as_seconds(name: str, hours: object) -> int:
    """Hours (number or string) as whole seconds, or a clear error."""
    seconds = int(round(as_number(name, hours) * 3600))
    if seconds <= 0:
        raise StepError(f"{name}={hours!r} must be positive.")
    return seconds


def check_image_tag(tag: str | None) -> str:
    """An immutable image reference: a git-SHA tag or a digest (sha256:...), never `latest`.

    SageMaker's step cache compares the image URI: a moving tag would reuse results of old code."""
    if not tag or tag == "latest":
        raise StepError(f"image_tag={tag!r} is not an immutable reference: pass the git SHA the images were "
                        "pushed with (make push TAG=...) or a digest sha256:<64 hex>.")
    return tag


def check_hyperparameters(values: dict[str, object] | None) -> dict[str, str]:
    """The fixed hyperparameters as SageMaker passes them (strings), checked by the train step's own
    Hyperparameters now rather than an hour into the training job."""
    from gtsrb.train.hyperparameters import Hyperparameters

    if values is None:
        return {}
    if not isinstance(values, dict):
        raise StepError(f"hyperparameters={values!r} must be a JSON object of key: value.")
    as_strings = {str(key): str(value) for key, value in values.items()}
    Hyperparameters.from_mapping(as_strings)  # a StepError naming the key when one is bad
    return as_strings


def from_kwargs(  # these are the documented get_pipeline kwargs, one each
    region: str | None = None,
    role: str | None = None,
    default_bucket: str | None = None,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    model_package_group_name: str = graph.MODEL_PACKAGE_GROUP,
    base_job_prefix: str = DEFAULT_BASE_JOB_PREFIX,
    image_tag: str | None = None,
    image_registry: str | None = None,
    image_account: str | None = None,
    input_data_url: str | None = None,
    data_version: str = "1",
    training_instance_type: str = DEFAULT_TRAINING_INSTANCE,
    processing_instance_type: str = DEFAULT_PROCESSING_INSTANCE,
    use_spot: bool | str = True,
    max_run_hours: float | str = DEFAULT_MAX_RUN_HOURS,
    max_wait_hours: float | str = DEFAULT_MAX_WAIT_HOURS,
    volume_kms_key: str | None = None,
    output_kms_key: str | None = None,
    hyperparameters: dict[str, object] | None = None,
    local_mode: bool | str = False,
) -> Settings:
    """Check and complete the build-time settings (defaults need no AWS call)."""
    region = aws.region(region, "region=... (--kwargs '{\"region\": ...}')")
    account = aws.account_of(role or "")
    bucket = default_bucket or f"sagemaker-{region}-{account}"  # the SDK's default bucket name
    try:  # one source with `make push`: IMAGE_ACCOUNT, else the role's account
        images_account = images.image_account(role, image_account)
    except ValueError as err:
        raise StepError(f"image_account: {err}.") from None
    prefix = base_job_prefix.strip("/")
    settings = Settings(
        region=region,
        role=role or "",
        bucket=bucket,
        pipeline_name=pipeline_name,
        model_package_group_name=model_package_group_name,
        base_job_prefix=prefix,
        image_registry=image_registry if image_registry is not None else images.ecr_registry(images_account, region),
        image_tag=check_image_tag(image_tag),
        input_data_url=input_data_url or f"s3://{bucket}/{prefix}/raw",
        data_version=str(data_version),
        training_instance_type=check_training_instance_type(training_instance_type),
        processing_instance_type=processing_instance_type,
        use_spot=as_bool("use_spot", use_spot),
        max_run_seconds=as_seconds("max_run_hours", max_run_hours),
        max_wait_seconds=as_seconds("max_wait_hours", max_wait_hours),
        volume_kms_key=volume_kms_key or None,
        output_kms_key=output_kms_key or None,
        hyperparameters=check_hyperparameters(hyperparameters),
        local_mode=as_bool("local_mode", local_mode),
    )
    if settings.use_spot and settings.max_wait_seconds < settings.max_run_seconds:
        raise StepError(f"max_wait_hours={max_wait_hours} must be >= max_run_hours={max_run_hours} with spot training.")
    check_volume_kms_key(settings.training_instance_type, settings.volume_kms_key)
    if not settings.input_data_url.startswith("s3://"):
        raise StepError(f"input_data_url={settings.input_data_url!r} must be an s3:// URI.")
    return settings
