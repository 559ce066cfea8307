"""One local-mode execution: build the pipeline, start it on LocalPipelineSession, collect, register.

The pipeline is `pipelines.sagemaker.definition.get_pipeline(local_mode=True, ...)`: the definition `make
upsert` sends, with the cpu image for training and a CreateModel step in place of the registration.
Everything else that differs from a SageMaker execution is a start parameter: instance types
`local`, the instance count, the raw data as `file://`, the threshold and the hyperparameters.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gtsrb.common import contract
from gtsrb.common.failure import ERROR_PREFIX, REASON_SEPARATOR, StepError
from pipelines import graph, images
from pipelines.local import console, emulated_job
from pipelines.local.options import DEMO_STEP, RunOptions, demo_data_args
from pipelines.sagemaker.settings import DEFAULT_BASE_JOB_PREFIX, HYPERPARAMETER_OF
from pipelines.sagemaker_local import local_s3, preflight, progress

BUCKET = "gtsrb-local"  # the moto server's one bucket
ROLE = "arn:aws:iam::000000000000:role/SageMakerExecutionRole"  # never checked: local mode has no IAM
LOCAL_INSTANCE = "local"  # the SDK's instance type for a container on this machine
EXECUTIONS_DIR = "executions"  # WORK/executions/<id>/: the execution's S3 prefix, mirrored
SCRATCH_DIR = "sdk-jobs"  # WORK/sdk-jobs: the SDK's container_root while the execution runs
EXIT_REGISTERED, EXIT_FAILED, EXIT_BELOW_THRESHOLD = 0, 1, 3
FIXED_DEFAULTS = {"preset": "cpu"}  # no GPU in local mode: the CPU recipe, as make demo without a GPU
# Compose prefixes each container line with `<container name> | `.
_COMPOSE_PREFIX = re.compile(r"^\S+\s+\|\s?")


@dataclass
class Options(RunOptions):
    """make sagemaker-local's command line, parsed."""

    image_tag: str = ""  # an immutable tag (the definition refuses latest): make passes the git SHA
    image_registry: str = ""


@dataclass
class StepResult:
    """One step as the SDK reports it (ListPipelineExecutionSteps), with our reason when it failed."""

    name: str
    status: str
    seconds: float
    sdk_reason: str = ""
    reason: str = ""
    outcome: str = ""


def split_hyperparameters(hps: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(start parameters, fixed hyperparameters): a hyperparameter the pipeline has a parameter for
    (epochs -> Epochs, ...) is overridden at start; any other is fixed when the pipeline is built. The
    preset is always fixed: it sets the other parameters' defaults, which a start override would not."""
    parameter_of = {hp: name for name, hp in HYPERPARAMETER_OF.items() if hp != "preset"}
    parameters = {parameter_of[key]: value for key, value in hps.items() if key in parameter_of}
    fixed = {**FIXED_DEFAULTS, **{key: value for key, value in hps.items() if key not in parameter_of}}
    return parameters, fixed


def typed_overrides(pipeline, overrides: dict[str, object]) -> dict[str, object]:
    """Start parameters in the types the SDK's local executor demands (int for ParameterInteger ...)."""
    declared = {p.name: p for p in pipeline.parameters}
    typed = {}
    for name, value in overrides.items():
        kind = declared[name].parameter_type.python_type
        try:
            typed[name] = kind(value)
        except ValueError:
            raise StepError(f"pipeline parameter {name}={value!r} is not a valid {kind.__name__}.") from None
    return typed


def log_reason(log_file: Path) -> str:
    """The sentence a failed step of ours printed last (`ERROR: ...`), from its log."""
    if not log_file.is_file():
        return ""
    lines = [_COMPOSE_PREFIX.sub("", line) for line in log_file.read_text(errors="replace").splitlines()]
    reasons = [line.split(ERROR_PREFIX, 1)[1].strip() for line in lines if ERROR_PREFIX in line]
    return reasons[-1] if reasons else ""


def training_failure(folder: Path) -> str:
    """The training job's failure file, as SageMaker reads it for FailureReason: local mode packs
    /opt/ml/output into output.tar.gz beside the model's output path."""
    for archive in sorted(folder.glob("**/output/output.tar.gz")):
        with tarfile.open(archive) as tar:
            member = next((m for m in tar.getmembers() if m.name.lstrip("./") == "failure"), None)
            if member is not None:
                return tar.extractfile(member).read().decode(errors="replace").split(REASON_SEPARATOR)[0].strip()
    return ""


def remove_job_containers(scratch: Path) -> None:
    """Remove the stopped containers of every job the SDK ran from `scratch` (it never runs
    `compose down`), then its folders: a run leaves no containers and no temp folders behind."""
    import yaml

    names = []
    for compose_file in scratch.glob("*/docker-compose.yaml"):
        services = yaml.safe_load(compose_file.read_text()).get("services", {})
        names += [service["container_name"] for service in services.values() if "container_name" in service]
    if names:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True, check=False, timeout=120)
    shutil.rmtree(scratch, ignore_errors=True)


class SageMakerLocalRun:
    """One execution under WORK."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.work = options.work.resolve()
        self.data = (options.data or self.work / "data").resolve()
        self.steps_dir = self.work / "steps"
        self.image = images.image_uri(options.image_registry, "cpu", options.image_tag)
        self.parameters, self.fixed_hps = split_hyperparameters(options.hyperparameters)

    # --- before the execution
    def generate_demo_data(self) -> None:
        """The demo set in WORK/data, as make demo writes it (reused when written with the same flags)."""
        flags = demo_data_args(self.options.demo_size)
        stamp = self.work / "data.args"
        if self.data.is_dir() and stamp.is_file() and stamp.read_text() == " ".join(flags):
            progress.announce(f"{DEMO_STEP}: reusing {self.data}")
            return
        progress.announce(f"{DEMO_STEP}: writing {self.data}")
        shutil.rmtree(self.data, ignore_errors=True)
        argv = [sys.executable, "-m", "gtsrb.demo_data", "--output", str(self.data), *flags]
        emulated_job.run_step_job(DEMO_STEP, argv, self.steps_dir / f"{DEMO_STEP}.log", self.steps_dir / "demo-failure")
        stamp.write_text(" ".join(flags))

    def pipeline_kwargs(self) -> dict:
        """get_pipeline's kwargs: `make upsert`'s, with the local switch and our image."""
        return {"region": local_s3.REGION, "role": ROLE, "default_bucket": BUCKET, "image_tag": self.options.image_tag,
                "image_registry": self.options.image_registry, "hyperparameters": self.fixed_hps, "local_mode": True}

    def start_parameters(self, pipeline) -> dict[str, object]:
        """What this execution overrides: local instances, the data, the threshold, hyperparameters."""
        overrides = {
            "InputDataUrl": self.data.as_uri(),
            "ProcessingInstanceType": LOCAL_INSTANCE,
            "TrainingInstanceType": LOCAL_INSTANCE,
            "TrainingInstanceCount": self.options.instances,
            "AccuracyThreshold": self.options.threshold,
            **self.parameters,
        }
        return typed_overrides(pipeline, overrides)

    # --- the execution
    def execute(self):
        """Build, create and start the pipeline on LocalPipelineSession; return the finished execution."""
        import boto3
        from botocore.exceptions import ClientError
        from sagemaker.mlops.local import LocalPipelineSession

        from pipelines.sagemaker.definition import get_pipeline, offline_sdk

        pipeline = get_pipeline(**self.pipeline_kwargs())
        parameters = self.start_parameters(pipeline)
        print(f"Start parameters: {json.dumps(parameters)}", flush=True)
        with offline_sdk(local_s3.REGION):  # no telemetry from the local session either
            session = LocalPipelineSession(boto_session=boto3.Session(region_name=local_s3.REGION))
            scratch = self.work / SCRATCH_DIR  # the SDK's per-job folders (compose files, downloads)
            scratch.mkdir(parents=True, exist_ok=True)
            local = {**(session.config or {}).get("local", {}), "container_root": str(scratch)}
            session.config = {**(session.config or {}), "local": local}
            session.create_pipeline(pipeline, "make sagemaker-local")
            try:
                with progress.watching(self.steps_dir):
                    return session.start_pipeline_execution(PipelineName=pipeline.name, PipelineParameters=parameters)
            except ClientError as err:
                raise StepError(f"the SDK refused to start the execution: {err.response['Error']['Message']}") from None
            finally:
                remove_job_containers(scratch)

    def step_results(self, execution, folder: Path) -> list[StepResult]:
        """Every step the SDK ran, in order, with our failure reason where one failed."""
        results = []
        for step in sorted(execution.list_steps()["PipelineExecutionSteps"], key=lambda s: s.get("StartTime") or 0):
            name, sdk_reason = step["StepName"], step.get("FailureReason", "")
            seconds = (step.get("EndTime") or time.time()) - (step.get("StartTime") or time.time())
            result = StepResult(name, step["StepStatus"], seconds, sdk_reason)
            if step["StepStatus"] == "Failed" and name != graph.FAIL:
                result.reason = (training_failure(folder / name) if name == graph.TRAIN.name else "") or \
                    log_reason(self.steps_dir / f"{name}.log")
            outcome = step.get("Metadata", {}).get("Condition", {}).get("Outcome")
            result.outcome = "" if outcome is None else f"outcome {str(outcome).lower()}"
            results.append(result)
        return results

    def local_path(self, s3_uri: str, execution_prefix: str, folder: Path) -> Path:
        """Where the mirror holds an object or prefix of the execution's S3."""
        key = s3_uri.removeprefix(f"s3://{BUCKET}/")
        return folder / key.removeprefix(execution_prefix).lstrip("/")

    # --- after the execution
    def register(self, archive: Path, evaluation_dir: Path, manifest: Path, execution_id: str):
        """Record the model in WORK's MLflow registry as make demo does (local mode cannot register)."""
        from pipelines.local import mlflow_registry as registry

        with tempfile.TemporaryDirectory() as model_dir:  # the registry reads history.json from it
            with tarfile.open(archive) as tar:
                tar.extractall(model_dir, filter="data")
            return registry.register(self.work, self.submission(archive, Path(model_dir), evaluation_dir, manifest,
                                                                execution_id))

    def submission(self, archive: Path, model_dir: Path, evaluation_dir: Path, manifest: Path, execution_id: str):
        """What the MLflow registry records: make demo's Submission, tagged with the execution."""
        from pipelines.local import mlflow_registry as registry

        return registry.Submission(
            model_archive=archive, model_dir=model_dir, evaluation_dir=evaluation_dir, manifest_file=manifest,
            params={**self.options.hyperparameters, **self.fixed_hps, "threshold": str(self.options.threshold),
                    "data": str(self.data), "image": self.image},
            tags={"run_name": f"sagemaker-local-{execution_id}", "pipeline": "sagemaker-local",
                  "execution": execution_id, "work": str(self.work)},
            description=f"Trained by the SageMaker SDK's local mode (execution {execution_id}) on {self.data}.",
        )

    def run(self) -> int:
        """Preflight, data, the execution, the mirror, registration and the summary; the exit code."""
        preflight.check_all(self.image)
        print(f"SageMaker local mode: {' -> '.join(graph.STEP_ORDER)} -> {graph.REGISTER} | {graph.FAIL}\n"
              f"  work       {self.work}\n  data       {self.data}\n  image      {self.image}\n"
              f"  threshold  {self.options.threshold}\n  instances  {self.options.instances}\n"
              f"  hyperparameters  {' '.join(f'{k}={v}' for k, v in {**self.fixed_hps, **self.options.hyperparameters}.items())}",
              flush=True)
        if self.options.data is None:
            self.generate_demo_data()
        elif not self.data.is_dir():
            raise StepError(f"DATA={self.data}: no such folder.")
        with local_s3.moto_s3(BUCKET):
            execution = self.execute()
            execution_id = execution.pipeline_execution_name
            prefix = f"{DEFAULT_BASE_JOB_PREFIX}/{execution_id}"  # the definition's execution_uri()
            folder = self.work / EXECUTIONS_DIR / execution_id
            local_s3.mirror(BUCKET, prefix, folder)
            return self.finish(execution, folder, prefix)

    def finish(self, execution, folder: Path, prefix: str) -> int:
        """Record, summarise, register when the condition passed; the exit code."""
        steps = self.step_results(execution, folder)
        self.record(execution, steps, folder)
        by_name = {s.name: s for s in steps}
        evaluation_dir = folder / graph.EVALUATE.name / graph.CONDITION.source.output
        if not (evaluation_dir / contract.EVALUATION_FILE).is_file():
            return report_failure(next((s for s in steps if s.status == "Failed"), None), execution)
        accuracy = float(contract.json_get(console.read_json(evaluation_dir / contract.EVALUATION_FILE),
                                           graph.CONDITION.json_path))
        manifest = folder / graph.PREPARE.name / contract.MANIFEST_OUTPUT / contract.MANIFEST_FILE
        from pipelines.local.mlflow_registry import tracking_uri

        summary = partial(console.Summary, manifest, evaluation_dir, self.work, tracking_uri(self.work), accuracy,
                          self.options.threshold, [console.StepReport(s.name, s.seconds) for s in steps])
        s3_model = execution.step_execution[graph.TRAIN.name].properties["ModelArtifacts"]["S3ModelArtifacts"]
        archive = self.local_path(s3_model, prefix, folder)
        if graph.FAIL in by_name:
            console.print_summary(summary(f"NOT registered: {by_name[graph.FAIL].sdk_reason}"))
            print(f"model       {console.shown_path(archive)} ({s3_model} in the run's S3)")
            return report_failure(by_name[graph.FAIL], execution, EXIT_BELOW_THRESHOLD)
        if by_name.get(graph.REGISTER, StepResult(graph.REGISTER, "did not run", 0)).status != "Succeeded":
            return report_failure(by_name.get(graph.REGISTER), execution)
        registered = self.register(archive, evaluation_dir, manifest, execution.pipeline_execution_name)
        console.print_summary(summary(f"{registered.model_name} version {registered.version} ({graph.APPROVAL_STATUS}), "
                                      f"MLflow run {registered.run_id}"))
        print(f"model       {console.shown_path(archive)} ({s3_model} in the run's S3)")
        print(f"serve       make serve WORK={console.shown_path(self.work)} "
              f"MODEL=models:/{registered.model_name}/{registered.version}", flush=True)
        return EXIT_REGISTERED

    def record(self, execution, steps: list[StepResult], folder: Path) -> None:
        """execution.json (the SDK's description, each step, the parameters) and the SDK's status table."""
        record = {"execution": execution.describe(), "steps": [vars(s) for s in steps],
                  "parameters": execution.pipeline_parameters, "image": self.image}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "execution.json").write_text(json.dumps(record, indent=2, default=str))
        print_steps(execution.pipeline_execution_name, record["execution"]["PipelineExecutionStatus"], steps, folder)


def report_failure(step: StepResult | None, execution, code: int = EXIT_FAILED) -> int:
    """`FAILED (<Step>): <our reason, else the SDK's>` on stderr; returns `code`."""
    reason = (step.reason or step.sdk_reason) if step else execution.describe().get("FailureReason", "")
    print(f"\nFAILED ({step.name if step else '?'}): {reason}", file=sys.stderr, flush=True)
    return code


def print_steps(execution_id: str, status: str, steps: list[StepResult], folder: Path) -> None:
    """The SDK's view of the execution: each step's status, time and failure reason."""
    print("\n" + "=" * 24 + " SageMaker local mode " + "=" * 24)
    print(f"execution   {execution_id}: {status} (S3 mirrored in {console.shown_path(folder)})")
    for step in steps:
        extra = f", {step.outcome}" if step.outcome else ""
        print(f"  {step.name:<22} {step.status:<10} {step.seconds:7.1f}s{extra}")
        if step.reason or step.sdk_reason:
            print(f"    reason: {step.reason or step.sdk_reason}")
            if step.reason and step.sdk_reason and step.reason not in step.sdk_reason:
                print(f"    SDK:    {step.sdk_reason[:300]}")
    sys.stdout.flush()
