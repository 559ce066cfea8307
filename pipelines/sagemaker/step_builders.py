"""The SageMaker steps, built from the shared step graph (pipelines.graph) with SDK v3.

Import only through pipelines.sagemaker.definition.get_pipeline: the SDK creates a boto3 client when
some of its modules are imported, so the region must be set first (definition.py does).

Every name, container path and wire comes from graph.py and gtsrb.common.contract; every image
from pipelines.images; every hyperparameter name from the train step's Hyperparameters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import (
    MetricDefinition,
    ProcessingInput,
    ProcessingOutput,
    ProcessingS3Input,
    ProcessingS3Output,
    StoppingCondition,
)
from sagemaker.core.training.configs import CheckpointConfig, Compute, InputData, Networking, OutputDataConfig
from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join, JsonGet
from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, Step, TrainingStep
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train import ModelTrainer

from gtsrb.common.preprocessing import TTA_MODES
from gtsrb.serve import protocol
from gtsrb.train.epoch_log import METRIC_DEFINITIONS
from gtsrb.train.hyperparameters import PRESETS, Hyperparameters
from pipelines import graph, instances
from pipelines.instances import processing_volume_kms_key
from pipelines.sagemaker.settings import HYPERPARAMETER_OF, Settings

PROPERTY_FILE = "EvaluationReport"  # the PropertyFile name the condition's JsonGet reads
PREPARE_CACHE = CacheConfig(enable_caching=True, expire_after="P30D")  # same data + image + args: reuse
PROCESSING_VOLUME_GB = 30
TRAINING_VOLUME_GB = 50  # RecordIO splits + checkpoints; NVMe instances ignore it


@dataclass(frozen=True)
class PipelineParameters:
    """What a user may change per execution (StartPipelineExecution overrides)."""

    input_data_url: ParameterString
    data_version: ParameterString
    processing_instance_type: ParameterString
    training_instance_type: ParameterString
    training_instance_count: ParameterInteger
    epochs: ParameterInteger
    learning_rate: ParameterFloat
    batch_size: ParameterInteger
    model: ParameterString
    image_size: ParameterInteger
    accuracy_threshold: ParameterFloat
    preset: ParameterString
    tta: ParameterString
    max_train_images: ParameterInteger
    model_approval_status: ParameterString

    def all(self) -> list:
        """In declaration order, for Pipeline(parameters=...)."""
        return [getattr(self, f.name) for f in fields(self)]

    def by_name(self) -> dict:
        """Each parameter by its pipeline name (LearningRate -> the learning_rate parameter)."""
        return {parameter.name: parameter for parameter in self.all()}


def make_parameters(settings: Settings, threshold: float) -> PipelineParameters:
    """The parameters, with defaults from the settings and the train step's Hyperparameters (as the
    settings' fixed hyperparameters set them, e.g. preset=cpu)."""
    hp = Hyperparameters.from_mapping(settings.hyperparameters)
    return PipelineParameters(
        input_data_url=ParameterString("InputDataUrl", default_value=settings.input_data_url),
        # Part of PrepareData's cache key (its arguments): SageMaker compares the input's URI, not
        # its content, so data re-uploaded under the same InputDataUrl needs a new DataVersion.
        data_version=ParameterString("DataVersion", default_value=settings.data_version),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value=settings.processing_instance_type),
        training_instance_type=ParameterString("TrainingInstanceType", default_value=settings.training_instance_type),
        training_instance_count=ParameterInteger("TrainingInstanceCount", default_value=1),
        epochs=ParameterInteger("Epochs", default_value=hp.epochs),
        learning_rate=ParameterFloat("LearningRate", default_value=hp.lr),
        batch_size=ParameterInteger("BatchSize", default_value=hp.batch_size),
        model=ParameterString("Model", default_value=hp.model),
        image_size=ParameterInteger("ImageSize", default_value=hp.image_size),
        accuracy_threshold=ParameterFloat("AccuracyThreshold", default_value=threshold),
        # the other tunable hyperparameters (docs/sagemaker-pipeline.md); run_pipeline fills the
        # parameters above from a Preset override, so Preset=cpu means the whole CPU recipe
        preset=ParameterString("Preset", default_value=hp.preset, enum_values=list(PRESETS)),
        tta=ParameterString("Tta", default_value=hp.tta, enum_values=list(TTA_MODES)),
        max_train_images=ParameterInteger("MaxTrainImages", default_value=hp.max_train_images),
        model_approval_status=ParameterString(
            "ModelApprovalStatus",
            default_value=graph.APPROVAL_STATUS,
            enum_values=list(graph.APPROVAL_STATUSES),
        ),
    )


@dataclass
class BuildContext:
    """What every builder needs: settings, parameters, the recording session, steps built so far."""

    settings: Settings
    params: PipelineParameters
    session: PipelineSession
    steps: dict[str, Step]


def pipeline_session(settings: Settings, boto_session) -> PipelineSession:
    """A PipelineSession that records requests instead of sending them (the user's SDK config applies).

    In local mode it says so (`local_mode`), as the SDK's LocalPipelineSession would: in 3.27.0
    that class is not a PipelineSession, so steps are recorded here and executed by it later."""
    session = PipelineSession(boto_session=boto_session, default_bucket=settings.bucket)
    session.local_mode = settings.local_mode
    return session


def execution_uri(settings: Settings, step: str, *names: str) -> Join:
    """s3://bucket/prefix/<execution id>/<step>/<names...>: one folder per execution and step."""
    return Join(on="/", values=[settings.s3_root, ExecutionVariables.PIPELINE_EXECUTION_ID, step, *names])


def source_uri(source: graph.Source, steps: dict[str, Step], params: PipelineParameters):
    """The S3 URI behind a graph Source: the raw-data parameter, a processing output or the model."""
    if source.step is None:
        return params.input_data_url
    step = steps[source.step]
    if source.step == graph.TRAIN.name and source.output == graph.TRAIN.model_output:
        return step.properties.ModelArtifacts.S3ModelArtifacts
    return step.properties.ProcessingOutputConfig.Outputs[source.output].S3Output.S3Uri


def processing_inputs(spec: graph.ProcessingSpec, ctx: BuildContext) -> list[ProcessingInput]:
    """The spec's inputs: S3 prefixes (parameter or earlier step) at the graph's container paths."""
    return [
        ProcessingInput(
            input_name=name,
            s3_input=ProcessingS3Input(
                s3_uri=source_uri(item.source, ctx.steps, ctx.params),
                local_path=str(item.path),
                s3_data_type="S3Prefix",
                s3_input_mode="File",
            ),
        )
        for name, item in spec.inputs.items()
    ]


def processing_outputs(spec: graph.ProcessingSpec, settings: Settings) -> list[ProcessingOutput]:
    """The spec's outputs: the graph's container paths, uploaded per execution at the end of the job."""
    return [
        ProcessingOutput(
            output_name=name,
            s3_output=ProcessingS3Output(
                s3_uri=execution_uri(settings, spec.name, name), local_path=str(path), s3_upload_mode="EndOfJob"
            ),
        )
        for name, path in spec.outputs.items()
    ]


def processing_step(
    spec: graph.ProcessingSpec,
    ctx: BuildContext,
    extra_arguments: list | None = None,
    **step_kwargs,
) -> ProcessingStep:
    """A ProcessingStep running spec.command() in our cpu image, inputs and outputs from the graph."""
    settings, params = ctx.settings, ctx.params
    processor = Processor(
        role=settings.role,
        image_uri=settings.image("cpu"),
        entrypoint=spec.command(),
        instance_type=params.processing_instance_type,
        instance_count=1,  # prepare and evaluate do not shard their work: a second instance would repeat it
        volume_size_in_gb=PROCESSING_VOLUME_GB,
        volume_kms_key=processing_volume_kms_key(settings.processing_instance_type, settings.volume_kms_key),
        output_kms_key=settings.output_kms_key,
        base_job_name=f"{settings.base_job_prefix}-{spec.module.rsplit('.', 1)[-1]}",
        sagemaker_session=ctx.session,
        network_config=NetworkConfig(enable_network_isolation=True),  # the steps need no internet
    )
    step_args = processor.run(
        inputs=processing_inputs(spec, ctx), outputs=processing_outputs(spec, settings), arguments=extra_arguments
    )
    return ProcessingStep(name=spec.name, step_args=step_args, **step_kwargs)


def training_step(ctx: BuildContext) -> TrainingStep:
    """TrainModel: our gpu image's sagemaker-training entry point (no source upload), spot + checkpoints."""
    settings, params, spec = ctx.settings, ctx.params, graph.TRAIN
    stopping = StoppingCondition(
        max_runtime_in_seconds=settings.max_run_seconds,
        # SageMaker rejects MaxWaitTimeInSeconds unless spot is on (sagemaker-python-sdk#4140).
        max_wait_time_in_seconds=settings.max_wait_seconds if settings.use_spot else None,
    )
    trainer = ModelTrainer(
        training_image=settings.image(settings.training_variant),
        role=settings.role,
        sagemaker_session=ctx.session,
        base_job_name=f"{settings.base_job_prefix}-train",
        compute=Compute(
            instance_type=params.training_instance_type,
            instance_count=params.training_instance_count,
            volume_size_in_gb=TRAINING_VOLUME_GB,
            volume_kms_key_id=settings.volume_kms_key,
            enable_managed_spot_training=settings.use_spot,
        ),
        networking=Networking(enable_network_isolation=True),  # weights are baked into the image
        stopping_condition=stopping,
        output_data_config=OutputDataConfig(
            s3_output_path=execution_uri(settings, spec.name), kms_key_id=settings.output_kms_key
        ),
        # Per execution: a spot restart resumes, a new execution never picks up another's state.
        checkpoint_config=CheckpointConfig(s3_uri=execution_uri(settings, spec.name, "checkpoints")),
        hyperparameters=training_hyperparameters(settings, params),
    ).with_metric_definitions([MetricDefinition(name=m["Name"], regex=m["Regex"]) for m in METRIC_DEFINITIONS])
    channels = [
        InputData(channel_name=channel, data_source=source_uri(source, ctx.steps, params))
        for channel, source in spec.channels.items()
    ]
    return TrainingStep(name=spec.name, step_args=trainer.train(input_data_config=channels))


def training_hyperparameters(settings: Settings, params: PipelineParameters) -> dict:
    """The pipeline parameters' hyperparameters (as strings) and the settings' fixed ones."""
    from_parameters = {hp: params.by_name()[name].to_string() for name, hp in HYPERPARAMETER_OF.items()}
    fixed = {key: value for key, value in settings.hyperparameters.items() if key not in from_parameters}
    return {**fixed, **from_parameters}


def model_builder(ctx: BuildContext) -> ModelBuilder:
    """The served model: the cpu image's `serve` with the training step's model.tar.gz."""
    settings, params = ctx.settings, ctx.params
    return ModelBuilder(
        image_uri=settings.image(instances.SERVING_VARIANT),  # runs `serve` on every type listed below
        s3_model_data_url=source_uri(graph.EVALUATE.inputs["model"].source, ctx.steps, params),
        role_arn=settings.role,
        sagemaker_session=ctx.session,
        dependencies=None,  # no code to upload: the default would probe the S3 bucket
        log_level=logging.WARNING,  # its default (DEBUG) sets the SDK's shared logger to DEBUG
    )


def register_step(ctx: BuildContext) -> ModelStep:
    """RegisterModel: a version in the model package group, with evaluation.json as model quality.

    In local mode a CreateModel step of the same model instead: the SDK's local executor refuses
    registration steps (the local runner then records the version in MLflow)."""
    settings, params = ctx.settings, ctx.params
    builder = model_builder(ctx)
    if settings.local_mode:
        return ModelStep(name=graph.REGISTER, step_args=builder.build())
    report_uri = Join(
        on="/",
        values=[source_uri(graph.CONDITION.source, ctx.steps, params), graph.CONDITION.file],
    )
    step_args = builder.register(
        model_package_group_name=settings.model_package_group_name,
        content_types=list(protocol.REQUEST_CONTENT_TYPES),  # what src/serve accepts, RecordIO for transform
        response_types=list(protocol.RESPONSE_CONTENT_TYPES),
        inference_instances=[instances.check_serving_instance_type(instances.SERVING_VARIANT, t) for t in instances.INFERENCE_INSTANCES],
        transform_instances=[instances.check_serving_instance_type(instances.SERVING_VARIANT, t) for t in instances.TRANSFORM_INSTANCES],
        model_metrics=ModelMetrics(model_statistics=MetricsSource(s3_uri=report_uri, content_type="application/json")),
        approval_status=params.model_approval_status,
    )
    return ModelStep(name=graph.REGISTER, step_args=step_args)


def fail_message_expression(accuracy, threshold) -> Join:
    """graph.fail_message() with pipeline expressions in place of its two values."""
    return Join(on="", values=graph.fail_message_parts(accuracy, threshold))


def condition_step(ctx: BuildContext, evaluation: ProcessingStep, report: PropertyFile) -> ConditionStep:
    """CheckAccuracy: accuracy (shared JSON path) >= threshold -> RegisterModel, else the Fail step."""
    spec, params = graph.CONDITION, ctx.params
    accuracy = JsonGet(step_name=evaluation.name, property_file=report, json_path=spec.json_path)
    fail = FailStep(name=spec.if_false, error_message=fail_message_expression(accuracy, params.accuracy_threshold))
    return ConditionStep(
        name=spec.name,
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=params.accuracy_threshold)],
        if_steps=[register_step(ctx)],
        else_steps=[fail],
    )


def build_pipeline(settings: Settings, threshold: float, boto_session) -> Pipeline:
    """Prepare -> Train -> Evaluate -> CheckAccuracy (Register | Fail), in graph.STEP_ORDER."""
    params = make_parameters(settings, threshold)
    ctx = BuildContext(settings, params, pipeline_session(settings, boto_session), steps={})
    # prepare packs for the net's input size; the data version only keys the step cache
    prepare_args = ["--image-size", params.image_size.to_string(), "--data-version", params.data_version]
    ctx.steps[graph.PREPARE.name] = processing_step(graph.PREPARE, ctx, prepare_args, cache_config=PREPARE_CACHE)
    ctx.steps[graph.TRAIN.name] = training_step(ctx)
    # The property file lives in the evaluation output: <output>/evaluation.json.
    output = graph.CONDITION.source.output
    report = PropertyFile(name=PROPERTY_FILE, output_name=output, path=graph.CONDITION.file)
    ctx.steps[graph.EVALUATE.name] = processing_step(graph.EVALUATE, ctx, property_files=[report])
    ctx.steps[graph.CONDITION.name] = condition_step(ctx, ctx.steps[graph.EVALUATE.name], report)
    return Pipeline(
        name=settings.pipeline_name,
        parameters=params.all(),
        steps=[ctx.steps[name] for name in graph.STEP_ORDER],
        sagemaker_session=ctx.session,
    )

