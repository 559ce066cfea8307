"""`python -m pipelines.local` (make demo): the SageMaker pipeline's steps, run on this machine.

The step graph comes from pipelines.graph, as the SageMaker pipeline's does: each processing
step runs its spec's command with the container paths (/opt/ml/processing/...) mapped to
folders under WORK, and the training step runs `python -m gtsrb.train` with the environment the
sagemaker-training toolkit gives it (SM_CHANNEL_*, SM_MODEL_DIR, SM_HPS, hyperparameters as
`--key value`, SAGEMAKER_BASE_DIR so that /opt/ml/checkpoints is WORK/train/checkpoints). Then
the condition reads the accuracy from evaluation.json, and RegisterModel records the model in
MLflow's registry (pipelines.registry) or the run fails with graph.fail_message().

WORK layout:
    data/                       generated demo data (when --data is not given)
    prepare/{train,validation,test,manifest}/   the PrepareData outputs
    train/model/ train/model.tar.gz train/checkpoints/ train/output/   the TrainModel job
    evaluation/                 evaluation.json, per_class.csv, confusion_matrix.png, misclassified.png
    mlflow.db mlartifacts/      the MLflow tracking store and model registry
    steps/<Step>.json|.log      done-markers (step reuse) and each step's full log

Exit codes: 0 registered, 1 a step failed or bad input, 3 accuracy below the threshold,
130 interrupted (run the same command again to resume).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gtsrb.common import contract
from gtsrb.common.failure import StepError
from gtsrb.demo_data import writer as demo_writer
from pipelines import graph, work_lock
from pipelines.local_cache import Marker, StepCache, hash_code, hash_tree, step_key

DEMO_THRESHOLD = 0.70  # the default demo reaches ~0.85 on 2 cores: a clear margin (README)
DEMO_STEP = "GenerateDemoData"
# The demo set: tracks per class, frames per track, test images per class (43 classes); the
# generator's defaults, so `make demo-data` and `make demo` write the same set.
DEMO_SIZE: tuple[int, int, int] = (demo_writer.DEFAULT_TRACKS_PER_CLASS, demo_writer.DEFAULT_FRAMES_PER_TRACK, demo_writer.DEFAULT_TEST_PER_CLASS)
DEMO_SEED = 0
EXIT_FAILED, EXIT_BELOW_THRESHOLD, EXIT_INTERRUPTED = 1, 3, 130
# Where each graph step's outputs live under WORK.
STEP_DIRS: dict[str, str] = {graph.PREPARE.name: "prepare", graph.TRAIN.name: "train", graph.EVALUATE.name: "evaluation"}
PROCESSING: dict[str, graph.ProcessingSpec] = {s.name: s for s in (graph.PREPARE, graph.EVALUATE)}
COMMON_CODE = "gtsrb.common"


# --- layout: the container paths of the graph, mapped under WORK ------------------------------
@dataclass(frozen=True)
class TrainingJob:
    """The training job's folders: SAGEMAKER_BASE_DIR and what the toolkit puts below it."""

    base: Path

    @property
    def model_dir(self) -> Path:  # SM_MODEL_DIR (/opt/ml/model)
        return self.base / "model"

    @property
    def archive(self) -> Path:  # what SageMaker uploads: model.tar.gz of SM_MODEL_DIR
        return self.base / contract.MODEL_ARCHIVE

    @property
    def checkpoints(self) -> Path:  # /opt/ml/checkpoints, synced with checkpoint_s3_uri on SageMaker
        return self.base / "checkpoints"

    @property
    def output(self) -> Path:  # /opt/ml/output (failure file, SM_OUTPUT_DATA_DIR)
        return self.base / "output"


def processing_outputs(spec: graph.ProcessingSpec, work: Path) -> dict[str, Path]:
    """A processing step's outputs under WORK/<step dir>, keeping their layout below a common root."""
    root = PurePosixPath(os.path.commonpath([str(p) for p in spec.outputs.values()]))
    return {name: work / STEP_DIRS[spec.name] / path.relative_to(root) for name, path in spec.outputs.items()}


def step_outputs(step: str, work: Path) -> dict[str, Path]:
    """The local outputs of any graph step, by output name."""
    if step == graph.TRAIN.name:
        return {graph.TRAIN.model_output: TrainingJob(work / STEP_DIRS[step]).archive}
    return processing_outputs(PROCESSING[step], work)


def local_source(source: graph.Source, work: Path, data: Path) -> Path:
    """Where a graph source (an earlier step's output, or the raw data) is on this machine."""
    return data if source.step is None else step_outputs(source.step, work)[source.output]


def container_mapping(spec: graph.ProcessingSpec, work: Path, data: Path) -> dict[PurePosixPath, Path]:
    """Container path -> local path for a processing step's inputs, outputs and their output root."""
    outputs = processing_outputs(spec, work)
    mapping = {inp.path: local_source(inp.source, work, data) for inp in spec.inputs.values()}
    mapping.update({spec.outputs[name]: path for name, path in outputs.items()})
    mapping[PurePosixPath(os.path.commonpath([str(p) for p in spec.outputs.values()]))] = work / STEP_DIRS[spec.name]
    return mapping


def local_arguments(arguments: tuple[str, ...] | list[str], mapping: dict[PurePosixPath, Path]) -> list[str]:
    """The arguments with every container path (or a path below one) replaced by its local path."""
    local = []
    for arg in arguments:
        for container, here in sorted(mapping.items(), key=lambda kv: -len(str(kv[0]))):
            if arg == str(container) or arg.startswith(f"{container}/"):
                arg = str(here) + arg[len(str(container)) :]
                break
        local.append(arg)
    return local


def hyperparameter_args(hps: dict[str, str]) -> list[str]:
    """`--key value` pairs, as the sagemaker-training toolkit passes hyperparameters."""
    return [item for key, value in hps.items() for item in (f"--{key}", value)]


def training_env(job: TrainingJob, channels: dict[str, Path], hps: dict[str, str], num_gpus: int) -> dict[str, str]:
    """The SM_* variables the sagemaker-training toolkit sets for the script (single host)."""
    env = {
        "SAGEMAKER_BASE_DIR": str(job.base),
        "SM_MODEL_DIR": str(job.model_dir),
        "SM_OUTPUT_DIR": str(job.output),
        "SM_OUTPUT_DATA_DIR": str(job.output / "data"),
        "SM_INPUT_DIR": str(job.base / "input"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_HPS": json.dumps(hps),
        "SM_USER_ARGS": json.dumps(hyperparameter_args(hps)),
        "SM_NUM_GPUS": str(num_gpus),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_CURRENT_HOST": "algo-1",
        "SM_MODULE_NAME": "train",
    }
    env.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
    env.update({f"SM_HP_{key.upper()}": value for key, value in hps.items()})
    return env


# --- running one command: output to the terminal and to the step's log ------------------------
def run_command(step: str, argv: list[str], env: dict[str, str], log_file: Path, failure_file: Path) -> None:
    """Run `argv`, streaming its output (progress bars included); StepError on a non-zero exit."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    failure_file.unlink(missing_ok=True)
    out = getattr(sys.stdout, "buffer", None)
    with log_file.open("wb") as log, subprocess.Popen(
        argv, env={**os.environ, "PYTHONUNBUFFERED": "1", **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            while chunk := os.read(proc.stdout.fileno(), 65536):
                log.write(chunk)
                if out is not None:  # raw bytes keep tqdm's carriage returns intact
                    out.write(chunk)
                else:
                    sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        except KeyboardInterrupt:  # let the step save what it can (train checkpoints on SIGTERM)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            raise
        code = proc.wait()
    if code != 0:
        reason = failure_file.read_text(errors="replace").split("\n\n")[0].strip() if failure_file.is_file() else ""
        raise StepError(f"{step} failed: {reason or f'exit code {code}'} (full log: {log_file})")


# --- the pipeline --------------------------------------------------------------------------
@dataclass
class Options:
    """The command line, parsed."""

    work: Path
    data: Path | None = None
    threshold: float = DEMO_THRESHOLD
    hyperparameters: dict[str, str] = field(default_factory=dict)
    use_cache: bool = True
    demo_size: tuple[int, int, int] = DEMO_SIZE


@dataclass
class StepReport:
    """One line of the summary's timing table."""

    name: str
    seconds: float
    cached: bool = False


class LocalPipeline:
    """One execution of the graph under WORK."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.work = options.work.resolve()
        self.data = (options.data or self.work / "data").resolve()
        self.cache = StepCache(self.work / "steps", enabled=options.use_cache)
        self.job = TrainingJob(self.work / STEP_DIRS[graph.TRAIN.name])
        self.reports: list[StepReport] = []
        self.hashes: dict[tuple[str | None, str], str] = {}  # (step, output) -> content hash
        self.num_gpus = visible_gpus()
        self.hps, self.image_size = resolve_hyperparameters(options.hyperparameters, self.num_gpus)

    # --- step plumbing
    def cached_step(self, name: str, key: str, outputs: dict[str, Path], action, hash_outputs: bool = True) -> Marker:
        """Reuse the finished step with this key, or run `action()` and record it."""
        marker = self.cache.lookup(name, key, outputs)
        if marker is not None:
            announce(f"{name}: reusing the finished step from {marker.finished} (same inputs and parameters)")
            self.reports.append(StepReport(name, marker.seconds, cached=True))
        else:
            announce(f"{name}: running")
            self.cache.forget(name)
            start = time.monotonic()
            info = action() or {}
            hashes = {n: hash_tree(p) if hash_outputs else "" for n, p in outputs.items()}
            marker = Marker(name, key, round(time.monotonic() - start, 1), hashes, info)
            self.cache.write(marker, outputs)  # issue 15: signatures, so reuse verifies the outputs
            self.reports.append(StepReport(name, marker.seconds))
        self.hashes.update({(name, n): h for n, h in marker.outputs.items()})
        return marker

    def source_hash(self, source: graph.Source) -> str:
        """Content hash of a graph source (an earlier step's recorded output hash, or the raw data)."""
        if (source.step, source.output) not in self.hashes:
            self.hashes[(source.step, source.output)] = hash_tree(self.data)
        return self.hashes[(source.step, source.output)]

    def log_file(self, step: str) -> Path:
        return self.work / "steps" / f"{step}.log"

    # --- steps
    def generate_demo_data(self) -> None:
        """The raw-data parameter's default: the built-in synthetic GTSRB-like set, in WORK/data."""
        argv = [sys.executable, "-m", "gtsrb.demo_data", "--output", str(self.data),
                "--seed", str(DEMO_SEED), *demo_size_args(self.options.demo_size)]
        key = step_key(DEMO_STEP, code=hash_code("gtsrb.demo_data"), argv=argv[5:])  # not the WORK path

        def action() -> None:
            shutil.rmtree(self.data, ignore_errors=True)
            run_command(DEMO_STEP, argv, {}, self.log_file(DEMO_STEP), self.work / "steps" / DEMO_STEP / "output" / "message")

        marker = self.cached_step(DEMO_STEP, key, {"data": self.data}, action)
        self.hashes[(None, graph.RAW_DATA.output)] = marker.outputs["data"]

    def run_processing(self, spec: graph.ProcessingSpec, extra: list[str]) -> Marker:
        """A processing step: its spec's command with container paths mapped under WORK."""
        mapping = container_mapping(spec, self.work, self.data)
        for name, inp in spec.inputs.items():
            if not mapping[inp.path].exists():
                raise StepError(f"{spec.name}: input {name!r} is missing at {mapping[inp.path]}.")
        command = [*spec.command(), *extra]
        argv = [sys.executable, *local_arguments(command[1:], mapping)]
        inputs = {name: self.source_hash(inp.source) for name, inp in spec.inputs.items()}
        key = step_key(spec.name, code=hash_code(spec.module, COMMON_CODE), command=command, inputs=inputs)
        base = self.work / "steps" / spec.name  # SAGEMAKER_BASE_DIR: the failure message lands here

        def action() -> None:
            shutil.rmtree(self.work / STEP_DIRS[spec.name], ignore_errors=True)
            env = {"SAGEMAKER_BASE_DIR": str(base)}
            run_command(spec.name, argv, env, self.log_file(spec.name), base / "output" / "message")

        return self.cached_step(spec.name, key, processing_outputs(spec, self.work), action)

    def train(self) -> Marker:
        """The training job: the toolkit's environment, checkpoints kept for a resumed run."""
        channels = {ch: local_source(src, self.work, self.data) for ch, src in graph.TRAIN.channels.items()}
        inputs = {ch: self.source_hash(src) for ch, src in graph.TRAIN.channels.items()}
        key = step_key(graph.TRAIN.name, code=hash_code("gtsrb.train", COMMON_CODE), hps=self.hps, inputs=inputs)
        argv = [sys.executable, "-m", "gtsrb.train", *hyperparameter_args(self.hps)]
        env = training_env(self.job, channels, self.hps, self.num_gpus)

        def action() -> None:
            self.keep_or_clear_checkpoints(key)
            for path in (self.job.model_dir, self.job.output):
                shutil.rmtree(path, ignore_errors=True)
            self.job.archive.unlink(missing_ok=True)
            run_command(graph.TRAIN.name, argv, env, self.log_file(graph.TRAIN.name), self.job.output / "failure")
            archive_model(self.job.model_dir, self.job.archive)

        return self.cached_step(graph.TRAIN.name, key, step_outputs(graph.TRAIN.name, self.work), action)

    def keep_or_clear_checkpoints(self, key: str) -> None:
        """Resume only from checkpoints of this very key (same data, code and hyperparameters)."""
        key_file = self.work / "steps" / f"{graph.TRAIN.name}.checkpoints"
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
        announce(f"{graph.CONDITION.name}: {graph.CONDITION.json_path} >= {self.options.threshold}")
        start = time.monotonic()
        report_file = local_source(graph.CONDITION.source, self.work, self.data) / graph.CONDITION.file
        accuracy = float(contract.json_get(read_json(report_file), graph.CONDITION.json_path))
        self.reports.append(StepReport(graph.CONDITION.name, round(time.monotonic() - start, 1)))
        return accuracy >= self.options.threshold, accuracy

    def register(self) -> Marker:
        """RegisterModel: a model version in MLflow's registry, pending manual approval."""
        from pipelines import registry

        evaluation = local_source(graph.CONDITION.source, self.work, self.data)
        manifest = step_outputs(graph.PREPARE.name, self.work)["manifest"] / contract.MANIFEST_FILE
        inputs = {
            "model": self.hashes[(graph.TRAIN.name, graph.TRAIN.model_output)],
            "evaluation": self.hashes[(graph.CONDITION.source.step, graph.CONDITION.source.output)],
            "manifest": self.hashes[(graph.PREPARE.name, "manifest")],
        }
        key = step_key(graph.REGISTER, code=hash_code("pipelines.registry"), group=graph.MODEL_PACKAGE_GROUP, inputs=inputs)
        submission = registry.Submission(
            model_archive=self.job.archive,
            model_dir=self.job.model_dir,
            evaluation_dir=evaluation,
            manifest_file=manifest,
            params={**self.hps, "threshold": str(self.options.threshold), "data": str(self.data)},
            tags={"run_name": f"local-{time.strftime('%Y%m%d-%H%M%S')}", "pipeline": "local", "work": str(self.work)},
            description=f"Trained by the local pipeline in {self.work} on {self.data}.",
        )

        def action() -> dict:
            registered = registry.register(self.work, submission)
            return {"model_name": registered.model_name, "version": registered.version, "run_id": registered.run_id}

        outputs = {"registry": self.work / registry.DB_FILE}
        return self.cached_step(graph.REGISTER, key, outputs, action, hash_outputs=False)

    # --- the whole run
    def run(self) -> int:
        """All steps in graph order; prints the summary; returns the exit code."""
        print_plan(self)
        if self.options.data is None:
            self.generate_demo_data()
        self.run_processing(graph.PREPARE, ["--image-size", str(self.image_size)])
        self.train()
        self.run_processing(graph.EVALUATE, [])
        passed, accuracy = self.check_condition()
        if not passed:
            message = graph.fail_message(f"{accuracy:.4f}", self.options.threshold)
            announce(f"{graph.CONDITION.if_false}: {message}")
            print_summary(self, accuracy, f"NOT registered: {message}")
            print(f"\nFAILED ({graph.FAIL}): {message}", file=sys.stderr, flush=True)
            return EXIT_BELOW_THRESHOLD
        marker = self.register()
        outcome = (
            f"{marker.info['model_name']} version {marker.info['version']} ({graph.APPROVAL_STATUS}), "
            f"MLflow run {marker.info['run_id']}"
        )
        print_summary(self, accuracy, outcome)
        return 0


# --- helpers ---------------------------------------------------------------------------------
def visible_gpus() -> int:
    """How many GPUs MXNet sees (the train step uses all of them; none means the CPU preset)."""
    import mxnet as mx

    return mx.context.num_gpus()


def resolve_hyperparameters(overrides: dict[str, str], num_gpus: int) -> tuple[dict[str, str], int]:
    """The hyperparameters to pass (`preset=cpu` without a GPU, then the overrides), checked; and the image size.

    Only these keys are passed, as strings, as SageMaker passes them: the train step's own
    defaults and preset fill in the rest, so the local run and a training job cannot differ.
    """
    from gtsrb.train.hyperparameters import Hyperparameters

    merged = {**({"preset": "cpu"} if num_gpus == 0 else {}), **overrides}
    typed = Hyperparameters.from_mapping(merged)  # a StepError naming the key when one is bad
    return merged, int(typed.image_size)


def archive_model(model_dir: Path, archive: Path) -> None:
    """What SageMaker does after a training job: tar SM_MODEL_DIR into model.tar.gz."""
    from gtsrb.common.model_io import archive_model as tar_model

    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        raise StepError(f"the training job left no model in {model_dir}; see its log.")
    tar_model(model_dir, archive)


def demo_size_args(size: tuple[int, int, int]) -> list[str]:
    """The demo-data generator's size flags."""
    tracks, frames, test = size
    return ["--tracks-per-class", str(tracks), "--frames-per-track", str(frames), "--test-per-class", str(test)]


def read_json(path: Path) -> dict:
    """A JSON file a step wrote, or a clear error naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StepError(f"{path}: cannot read the step's JSON output ({err}).") from err


def announce(message: str) -> None:
    """Each step announces itself on a line of its own."""
    print(f"\n==> {message}", flush=True)


def print_plan(pipeline: LocalPipeline) -> None:
    """What is about to run, with which data and settings."""
    opts = pipeline.options
    device = f"{pipeline.num_gpus} GPU(s)" if pipeline.num_gpus else "CPU (the train step's CPU preset)"
    data = str(pipeline.data) if opts.data else f"{pipeline.data} (generated demo set)"
    steps = " -> ".join([*([DEMO_STEP] if opts.data is None else []), *graph.STEP_ORDER, graph.REGISTER])
    print(f"Local pipeline: {steps}", flush=True)
    print(f"  work       {pipeline.work}\n  data       {data}\n  threshold  {opts.threshold}")
    print(f"  device     {device}\n  hyperparameters  {' '.join(f'{k}={v}' for k, v in pipeline.hps.items())}")
    print(f"  step reuse {'on' if opts.use_cache else 'off (--no-cache)'}", flush=True)


def data_counts(manifest_file: Path) -> str:
    """`train 1234 · validation 300 · test 500 images` from the prepare step's manifest."""
    counts = read_json(manifest_file).get("counts", {})
    return " · ".join(f"{split} {counts.get(split, {}).get('total', '?')}" for split in contract.SPLITS) + " images"


def shown_path(path: Path) -> str:
    """A path relative to the current folder when it is below it (shorter commands to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def print_summary(pipeline: LocalPipeline, accuracy: float, outcome: str) -> None:
    """The end of every run: data counts, accuracy, macro-F1, time per step, registration outcome."""
    from pipelines.registry import evaluation_metrics

    work = pipeline.work
    manifest = step_outputs(graph.PREPARE.name, work)["manifest"] / contract.MANIFEST_FILE
    report_dir = local_source(graph.CONDITION.source, work, pipeline.data)
    metrics = evaluation_metrics(read_json(report_dir / contract.EVALUATION_FILE))
    std = metrics.get("test_accuracy_std")
    macro_f1 = metrics.get("test_macro_f1")
    timing = " · ".join(f"{r.name} {r.seconds:.1f}s{' (reused)' if r.cached else ''}" for r in pipeline.reports)
    db = pipeline.work / "mlflow.db"
    print("\n" + "=" * 30 + " Summary " + "=" * 30)
    print(f"data        {data_counts(manifest)}")
    print(f"accuracy    {accuracy:.4f}" + (f" ± {std:.4f}" if std is not None else "") + f" (threshold {pipeline.options.threshold})")
    print(f"macro-F1    {macro_f1:.4f}" if macro_f1 is not None else "macro-F1    (not in the report)")
    print(f"time        {timing}")
    print(f"report      {shown_path(report_dir)}")
    print(f"registry    {outcome}")
    if db.is_file():
        print(f"browse      mlflow ui --backend-store-uri sqlite:///{shown_path(db)}", flush=True)


def parse_hp(items: list[str]) -> dict[str, str]:
    """`key=value` items into a dict (the same snake_case keys as the SageMaker hyperparameters)."""
    hps = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--hp expects key=value items, got {item!r}")
        hps[key.strip().replace("-", "_")] = value.strip()
    return hps


def parse_args(argv: list[str] | None = None) -> Options:
    """The command line of `python -m pipelines.local` (make demo passes the same flags)."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.local", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/demo"), help="folder for every output (default runs/demo)")
    parser.add_argument("--data", type=Path, help="GTSRB folder, official or Kaggle layout (default: generate the demo set)")
    parser.add_argument("--threshold", type=float, default=DEMO_THRESHOLD, help=f"register when test accuracy >= this (default {DEMO_THRESHOLD})")
    parser.add_argument("--hp", nargs="+", default=[], metavar="KEY=VALUE", help="training hyperparameters, e.g. epochs=3 image_size=32")
    parser.add_argument("--no-cache", action="store_true", help="run every step again instead of reusing finished ones")
    parser.add_argument("--demo-size", type=int, nargs=3, default=DEMO_SIZE, metavar=("TRACKS", "FRAMES", "TEST"),
                        help="generated demo set: tracks per class, frames per track, test images per class "
                        f"(default {' '.join(map(str, DEMO_SIZE))})")
    args = parser.parse_args(argv)
    try:
        hps = parse_hp(args.hp)
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    if not math.isfinite(args.threshold):  # issue 15: NaN compares false with every accuracy
        parser.error(f"--threshold {args.threshold}: must be a number (an accuracy, e.g. 0.9)")
    return Options(work=args.work, data=args.data, threshold=args.threshold, hyperparameters=hps, use_cache=not args.no_cache, demo_size=tuple(args.demo_size))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: the train step checkpoints first


def main(argv: list[str] | None = None) -> int:
    """Run the local pipeline; return the exit code (0 registered, 1 failed, 3 below threshold)."""
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    pipeline_start = time.monotonic()
    try:
        with work_lock.hold(options.work):  # issue 15: one run per WORK (see pipelines/work_lock.py)
            code = LocalPipeline(options).run()
    except StepError as err:
        print(f"\nERROR: {err}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command again to reuse finished steps and resume training "
              f"from {options.work / 'train' / 'checkpoints'}.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(f"total       {time.monotonic() - pipeline_start:.1f}s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
