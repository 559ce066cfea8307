"""The command line of `python -m pipelines.local` (make demo): flags, signals, exit codes."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path

from gtsrb.common.failure import StepError
from pipelines import recipes
from pipelines.local import layout, work_lock
from pipelines.local.options import DEMO_SIZE, DEMO_THRESHOLD, Options
from pipelines.local.runner import EXIT_BELOW_THRESHOLD, EXIT_REGISTERED, LocalPipeline

EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
__all__ = ["EXIT_BELOW_THRESHOLD", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_REGISTERED", "main", "parse_args"]


def parse_hp(items: list[str]) -> dict[str, str]:
    """`key=value` items into a dict (the same snake_case keys as the SageMaker hyperparameters)."""
    hps = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--hp expects key=value items, got {item!r}")
        hps[key.strip().replace("-", "_")] = value.strip()
    return hps


def add_run_flags(parser: argparse.ArgumentParser, work: Path) -> None:
    """--work, --data, --threshold, --recipe, --hp, --instances, --demo-size: the flags of both local runners (make demo,
    make sagemaker-local)."""
    parser.add_argument("--work", type=Path, default=work, help=f"folder for every output (default {work})")
    parser.add_argument("--data", type=Path, help="data folder: GTSRB (official or Kaggle layout) or your own "
                        "train/<class>/ folders (default: generate the demo set)")
    parser.add_argument("--threshold", type=float, default=DEMO_THRESHOLD,
                        help=f"register when test accuracy >= this (default {DEMO_THRESHOLD})")
    parser.add_argument("--recipe", type=Path, help="hyperparameters from a YAML/JSON file (recipes/cpu.yaml); --hp wins")
    parser.add_argument("--hp", nargs="+", default=[], metavar="KEY=VALUE",
                        help="training hyperparameters, e.g. epochs=3 image_size=32")
    parser.add_argument("--instances", type=int, default=1,
                        help="training instances with MXNet's parameter server (TrainingInstanceCount; make demo "
                        "emulates them as processes on 127.0.0.1; default 1)")
    parser.add_argument("--demo-size", type=int, nargs=3, default=DEMO_SIZE, metavar=("TRACKS", "FRAMES", "TEST"),
                        help="generated demo set: tracks per class, frames per track, test images per class "
                        f"(default {' '.join(map(str, DEMO_SIZE))})")


def run_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The RunOptions fields of the add_run_flags values, checked."""
    return {"work": args.work, "data": args.data, "threshold": args.threshold, "instances": args.instances,
            "hyperparameters": checked_hyperparameters(parser, args), "demo_size": tuple(args.demo_size)}


def checked_hyperparameters(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """The add_run_flags values checked (argparse's exit 2 naming the flag); the --hp items as a dict."""
    try:
        hps = {**(recipes.load(args.recipe) if args.recipe else {}), **parse_hp(args.hp)}  # HP= wins over the recipe
    except (argparse.ArgumentTypeError, StepError) as err:
        parser.error(str(err))
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data {args.data}: no such folder")
    if args.instances < 1:
        parser.error(f"--instances {args.instances}: must be at least 1")
    if not math.isfinite(args.threshold):  # NaN compares false with every accuracy
        parser.error(f"--threshold {args.threshold}: must be a number (an accuracy, e.g. 0.9)")
    return hps


def build_parser() -> argparse.ArgumentParser:
    """The flags; make demo passes the same ones."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.local",
                                     description="The SageMaker pipeline's steps, run on this machine.")
    add_run_flags(parser, Path("runs/demo"))
    parser.add_argument("--no-cache", action="store_true", help="run every step again instead of reusing finished ones")
    return parser


def parse_args(argv: list[str] | None = None) -> Options:
    """The command line, checked (argparse exits 2 with a clear message on a bad flag)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return Options(**run_options(parser, args), use_cache=not args.no_cache)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: the train step checkpoints first


def main(argv: list[str] | None = None) -> int:
    """Run the local pipeline; return the exit code (0 registered, 1 failed, 3 below threshold, 130 interrupted)."""
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    pipeline_start = time.monotonic()
    try:
        with work_lock.hold(options.work):  # one run per WORK (pipelines/local/work_lock.py)
            code = LocalPipeline(options).run()
    except StepError as err:
        print(f"\nERROR: {err}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        checkpoints = layout.training_job(options.work).checkpoints
        print(f"\nInterrupted. Run the same command again to reuse finished steps and resume training "
              f"from {checkpoints}.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(f"total       {time.monotonic() - pipeline_start:.1f}s", flush=True)
    return code
