"""What a person reads during a local run: the plan, one line per step, the summary.

Takes plain values (no runner object), so what is printed is what the runner decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import contract
from gtsrb.common.failure import StepError


@dataclass
class StepReport:
    """One line of the summary's timing table."""

    name: str
    seconds: float
    cached: bool = False


@dataclass(frozen=True)
class Plan:
    """What is about to run, with which data and settings."""

    steps: list[str]
    work: Path
    data: Path
    generated: bool
    threshold: float
    num_gpus: int
    hyperparameters: dict[str, str]
    use_cache: bool


@dataclass(frozen=True)
class Summary:
    """The end of a run: where its artifacts are, its accuracy, the registry's answer."""

    manifest_file: Path
    report_dir: Path
    work: Path
    store: str | None  # the MLflow tracking URI, None when nothing was logged to it yet
    accuracy: float
    threshold: float
    reports: list[StepReport]
    outcome: str


def read_json(path: Path) -> dict:
    """A JSON file a step wrote, or a clear error naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StepError(f"{path}: cannot read the step's JSON output ({err}).") from err


def announce(message: str) -> None:
    """Each step announces itself on a line of its own."""
    print(f"\n==> {message}", flush=True)


def print_plan(plan: Plan) -> None:
    """What is about to run, with which data and settings."""
    device = f"{plan.num_gpus} GPU(s)" if plan.num_gpus else "CPU (the train step's CPU preset)"
    data = f"{plan.data} (generated demo set)" if plan.generated else str(plan.data)
    print(f"Local pipeline: {' -> '.join(plan.steps)}", flush=True)
    print(f"  work       {plan.work}\n  data       {data}\n  threshold  {plan.threshold}")
    print(f"  device     {device}\n  hyperparameters  {' '.join(f'{k}={v}' for k, v in plan.hyperparameters.items())}")
    print(f"  step reuse {'on' if plan.use_cache else 'off (--no-cache)'}", flush=True)


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


def print_summary(summary: Summary) -> None:
    """The end of every run: data counts, accuracy, macro-F1, time per step, registration outcome."""
    from gtsrb.evaluate.report import evaluation_metrics

    metrics = evaluation_metrics(read_json(summary.report_dir / contract.EVALUATION_FILE))
    std = metrics.get("test_accuracy_std")
    macro_f1 = metrics.get("test_macro_f1")
    timing = " · ".join(f"{r.name} {r.seconds:.1f}s{' (reused)' if r.cached else ''}" for r in summary.reports)
    spread = f" ± {std:.4f}" if std is not None else ""
    print("\n" + "=" * 30 + " Summary " + "=" * 30)
    print(f"data        {data_counts(summary.manifest_file)}")
    print(f"accuracy    {summary.accuracy:.4f}{spread} (threshold {summary.threshold})")
    print(f"macro-F1    {macro_f1:.4f}" if macro_f1 is not None else "macro-F1    (not in the report)")
    print(f"time        {timing}")
    print(f"report      {shown_path(summary.report_dir)}")
    print(f"predictions {shown_path(summary.report_dir / contract.PREDICTIONS_FILE)} (one row per test image)")
    print(f"registry    {summary.outcome}")
    if summary.store:
        print(f"browse      make ui WORK={shown_path(summary.work)}  (MLflow store {summary.store})", flush=True)
