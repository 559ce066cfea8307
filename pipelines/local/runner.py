"""The local run of the step graph: each step reused when finished with the same key, else run.

A step's key hashes its code, parameters and input contents (pipelines.local.cache); a finished
step leaves WORK/steps/<Step>.json. Each step's job is a named method handed to cached_step.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from gtsrb.common import contract, sagemaker_job
from gtsrb.common.failure import StepError
from pipelines import graph
from pipelines.local import aside, console, emulated_hosts, emulated_job, layout
from pipelines.local.cache import Marker, StepCache, hash_code, hash_tree, step_key
from pipelines.local.options import DEMO_STEP, Options, demo_data_args, resolve_hyperparameters, visible_gpus

if TYPE_CHECKING:  # mlflow behind the registry takes ~2 s to import: only registering pays for it
    from pipelines.local.mlflow_registry import Submission

COMMON_CODE = "gtsrb.common"
# what a registration runs
REGISTER_CODE = ("pipelines.local.mlflow_registry", "pipelines.local.run_record", "pipelines.local.mlflow_model")
EXIT_REGISTERED, EXIT_BELOW_THRESHOLD = 0, 3


class LocalPipeline:
    """One execution of the graph under WORK."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.work = options.work.resolve()
        self.data = (options.data or self.work / layout.DATA_DIR).resolve()
        self.steps_dir = self.work / layout.STEPS_DIR
        self.cache = StepCache(self.steps_dir, enabled=options.use_cache)
        self.job = layout.training_job(self.work)
        self.reports: list[console.StepReport] = []
        self.hashes: dict[tuple[str | None, str], str] = {}  # (step, output) -> content hash
        self.num_gpus = visible_gpus()
        self.hps, self.image_size = resolve_hyperparameters(options.hyperparameters, self.num_gpus)

    # --- step plumbing
    def cached_step(self, name: str, key: str, outputs: dict[str, Path], job: Callable[[], dict | None],
                    hash_outputs: bool = True, replaces: Sequence[Path] = ()) -> Marker:
        """Reuse the finished step with this key, or run `job()` and record it. The earlier outputs
        `replaces` are kept aside while the job runs and put back if it fails (pipelines.local.aside)."""
        aside.restore_interrupted(replaces)
        marker = self.cache.lookup(name, key, outputs)
        if marker is not None:
            console.announce(f"{name}: reusing the finished step from {marker.finished} (same inputs and parameters)")
            self.reports.append(console.StepReport(name, marker.seconds, cached=True))
        else:
            console.announce(f"{name}: running")
            start = time.monotonic()
            with aside.kept_until_replaced(replaces):
                info = job() or {}
            hashes = {n: hash_tree(p) if hash_outputs else "" for n, p in outputs.items()}
            marker = Marker(name, key, round(time.monotonic() - start, 1), hashes, info)
            self.cache.write(marker, outputs)  # signatures: a reuse verifies what it hands on
            self.reports.append(console.StepReport(name, marker.seconds))
        self.hashes.update({(name, n): h for n, h in marker.outputs.items()})
        return marker

    def source_hash(self, source: graph.Source) -> str:
        """Content hash of a graph source (an earlier step's recorded output hash, or the raw data)."""
        if (source.step, source.output) not in self.hashes:
            self.hashes[(source.step, source.output)] = hash_tree(self.data)
        return self.hashes[(source.step, source.output)]

    def log_file(self, step: str) -> Path:
        """The step's full log (the console shows it too, less MXNet's own log lines)."""
        return self.steps_dir / f"{step}.log"

    def failure_file(self, step: str) -> Path:
        """Where a processing step (SAGEMAKER_BASE_DIR=WORK/steps/<Step>) writes its failure message."""
        return self.steps_dir / step / sagemaker_job.OUTPUT_DIR / sagemaker_job.PROCESSING_FAILURE_FILE

    # --- steps
    def generate_demo_data(self) -> None:
        """The raw-data parameter's default: the built-in synthetic GTSRB-like set, in WORK/data."""
        flags = demo_data_args(self.options.demo_size)
        key = step_key(DEMO_STEP, code=hash_code("gtsrb.demo_data"), argv=flags)  # not the WORK path
        argv = [sys.executable, "-m", "gtsrb.demo_data", "--output", str(self.data), *flags]
        marker = self.cached_step(DEMO_STEP, key, {"data": self.data}, partial(self._generate, argv), replaces=[self.data])
        self.hashes[(None, graph.RAW_DATA.output)] = marker.outputs["data"]

    def _generate(self, argv: list[str]) -> None:
        emulated_job.run_step_job(DEMO_STEP, argv, self.log_file(DEMO_STEP), self.failure_file(DEMO_STEP))

    def run_processing(self, spec: graph.ProcessingSpec, extra: list[str]) -> Marker:
        """A processing step: its spec's command with container paths mapped under WORK."""
        mapping = layout.container_mapping(spec, self.work, self.data)
        for name, inp in spec.inputs.items():
            if not mapping[inp.path].exists():
                raise StepError(f"{spec.name}: input {name!r} is missing at {mapping[inp.path]}.")
        command = [*spec.command(), *extra]
        argv = [sys.executable, *layout.local_arguments(command[1:], mapping)]
        inputs = {name: self.source_hash(inp.source) for name, inp in spec.inputs.items()}
        key = step_key(spec.name, code=hash_code(spec.module, COMMON_CODE), command=command, inputs=inputs)
        outputs = layout.processing_outputs(spec, self.work)
        return self.cached_step(spec.name, key, outputs, partial(self._process, spec, argv),
                                replaces=[self.work / layout.STEP_DIRS[spec.name]])

    def _process(self, spec: graph.ProcessingSpec, argv: list[str]) -> None:
        env = {sagemaker_job.BASE_DIR_ENV: str(self.steps_dir / spec.name)}  # the failure message lands there
        emulated_job.run_step_job(spec.name, argv, self.log_file(spec.name), self.failure_file(spec.name), env)

    def train(self) -> Marker:
        """The training job: the toolkit's environment, checkpoints kept for a resumed run."""
        channels = {ch: layout.local_source(src, self.work, self.data) for ch, src in graph.TRAIN.channels.items()}
        inputs = {ch: self.source_hash(src) for ch, src in graph.TRAIN.channels.items()}
        instances = {"instances": self.options.instances} if self.options.instances > 1 else {}  # one host: the key as before
        key = step_key(graph.TRAIN.name, code=hash_code("gtsrb.train", COMMON_CODE), hps=self.hps, inputs=inputs, **instances)
        outputs = layout.step_outputs(graph.TRAIN.name, self.work)
        return self.cached_step(graph.TRAIN.name, key, outputs, partial(self._train, key, channels),
                                replaces=[self.job.model_dir, self.job.archive])

    def _train(self, key: str, channels: dict[str, Path]) -> None:
        argv = [sys.executable, "-m", "gtsrb.train", *sagemaker_job.hyperparameters_to_args(self.hps)]
        self.keep_or_clear_checkpoints(key)
        if self.options.instances > 1:
            hosts = emulated_hosts.prepare_hosts(self.job, self.options.instances, channels, self.hps, self.num_gpus)
            emulated_hosts.run_hosts(graph.TRAIN.name, hosts, argv, self.log_file(graph.TRAIN.name))
        else:
            env = emulated_job.start_training_job(self.job, channels, self.hps, self.num_gpus)
            emulated_job.run_step_job(graph.TRAIN.name, argv, self.log_file(graph.TRAIN.name), self.job.failure_file, env)
        self.job.archive_model()

    def keep_or_clear_checkpoints(self, key: str) -> None:
        """Resume only from checkpoints of this very key (same data, code and hyperparameters)."""
        key_file = self.steps_dir / f"{graph.TRAIN.name}.checkpoints"
        same = self.cache.enabled and key_file.is_file() and key_file.read_text().strip() == key
        if same and self.job.checkpoints.is_dir() and any(self.job.checkpoints.iterdir()):
            print(f"   resuming from the checkpoints in {self.job.checkpoints}", flush=True)
            return
        shutil.rmtree(self.job.checkpoints, ignore_errors=True)
        self.job.checkpoints.mkdir(parents=True, exist_ok=True)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key + "\n")

    def check_condition(self) -> tuple[bool, float]:
        """The ConditionStep: accuracy from evaluation.json >= threshold."""
        console.announce(f"{graph.CONDITION.name}: {graph.CONDITION.json_path} >= {self.options.threshold}")
        start = time.monotonic()
        report_file = self.evaluation_dir() / graph.CONDITION.file
        accuracy = float(contract.json_get(console.read_json(report_file), graph.CONDITION.json_path))
        self.reports.append(console.StepReport(graph.CONDITION.name, round(time.monotonic() - start, 1)))
        return accuracy >= self.options.threshold, accuracy

    def evaluation_dir(self) -> Path:
        """The evaluate step's output folder (evaluation.json and the plots)."""
        return layout.local_source(graph.CONDITION.source, self.work, self.data)

    def manifest_file(self) -> Path:
        """The prepare step's manifest (counts, label map, the data's hash)."""
        return layout.step_outputs(graph.PREPARE.name, self.work)[contract.MANIFEST_OUTPUT] / contract.MANIFEST_FILE

    def register(self) -> Marker:
        """RegisterModel: a model version in MLflow's registry, pending manual approval."""
        from pipelines.local import mlflow_registry as registry

        inputs = {
            "model": self.hashes[(graph.TRAIN.name, graph.TRAIN.model_output)],
            "evaluation": self.hashes[(graph.CONDITION.source.step, graph.CONDITION.source.output)],
            contract.MANIFEST_OUTPUT: self.hashes[(graph.PREPARE.name, contract.MANIFEST_OUTPUT)],
        }
        key = step_key(graph.REGISTER, code=hash_code(*REGISTER_CODE), group=graph.MODEL_PACKAGE_GROUP,
                       store=registry.tracking_uri(self.work), inputs=inputs)
        submission = registry.Submission(
            model_archive=self.job.archive,
            model_dir=self.job.model_dir,
            evaluation_dir=self.evaluation_dir(),
            manifest_file=self.manifest_file(),
            params={"threshold": str(self.options.threshold), "data": str(self.data)},
            tags={"run_name": f"local-{time.strftime('%Y%m%d-%H%M%S')}", "pipeline": "local", "work": str(self.work),
                  "mlflow.source.name": "python -m pipelines.local",
                  "hp_overrides": " ".join(f"{k}={v}" for k, v in self.hps.items())},
            description=f"Trained by the local pipeline in {self.work} on {self.data}.",
            seconds=sum(r.seconds for r in self.reports),
        )
        earlier = self.cache.lookup(graph.REGISTER, key, {})
        if earlier is not None and not registry.version_exists(self.work, earlier.info["model_name"], earlier.info["version"]):
            console.announce(f"{graph.REGISTER}: {earlier.info['model_name']} version {earlier.info['version']} is no "
                             "longer in the registry (deleted?); registering the model again")
            self.cache.forget(graph.REGISTER)
        return self.cached_step(graph.REGISTER, key, {}, partial(self._register, submission, key), hash_outputs=False)

    def _register(self, submission: Submission, key: str) -> dict:
        from pipelines.local import mlflow_registry as registry

        registered = registry.register(self.work, submission, step_key=key)
        return {"model_name": registered.model_name, "version": registered.version, "run_id": registered.run_id}

    def prepare_args(self) -> list[str]:
        """The prepare step's flags from the hyperparameters it reads (image_size, allow_missing_test_classes)."""
        from gtsrb.train.hyperparameters import Hyperparameters

        allow = Hyperparameters.from_mapping(self.hps).allow_missing_test_classes
        return ["--image-size", str(self.image_size), *(["--allow-missing-test-classes"] if allow else [])]

    def approval_status(self, info: dict) -> str:
        """The version's approval status now (a reused registration may have been approved since)."""
        from pipelines.local import mlflow_registry as registry

        found = [v for v in registry.find_versions(self.work, info["model_name"]) if str(v.version) == str(info["version"])]
        return found[0].tags.get(registry.APPROVAL_TAG, graph.APPROVAL_STATUS) if found else graph.APPROVAL_STATUS

    # --- the whole run
    def plan(self) -> console.Plan:
        """The steps this run goes through, and with what."""
        demo = [DEMO_STEP] if self.options.data is None else []
        return console.Plan([*demo, *graph.STEP_ORDER, graph.REGISTER], self.work, self.data, self.options.data is None,
                            self.options.threshold, self.num_gpus, self.hps, self.options.use_cache)

    def summary(self, accuracy: float, outcome: str) -> console.Summary:
        """What the run's last lines show."""
        from pipelines.local.mlflow_registry import store_exists, tracking_uri

        store = tracking_uri(self.work) if store_exists(self.work) else None
        return console.Summary(self.manifest_file(), self.evaluation_dir(), self.work, store, accuracy,
                               self.options.threshold, self.reports, outcome)

    def run(self) -> int:
        """All steps in graph order; prints the summary; returns the exit code."""
        console.print_plan(self.plan())
        if self.options.data is None:
            self.generate_demo_data()
        self.run_processing(graph.PREPARE, self.prepare_args())
        self.train()
        self.run_processing(graph.EVALUATE, [])
        passed, accuracy = self.check_condition()
        if not passed:
            message = graph.fail_message(f"{accuracy:.4f}", self.options.threshold)
            console.announce(graph.CONDITION.if_false)
            console.print_summary(self.summary(accuracy, "NOT registered (accuracy below the threshold)"))
            print(f"\nFAILED ({graph.FAIL}): {message} Exit code {EXIT_BELOW_THRESHOLD}.", file=sys.stderr, flush=True)
            return EXIT_BELOW_THRESHOLD
        info = self.register().info
        outcome = f"{info['model_name']} version {info['version']} ({self.approval_status(info)}), MLflow run {info['run_id']}"
        console.print_summary(self.summary(accuracy, outcome))
        return EXIT_REGISTERED
