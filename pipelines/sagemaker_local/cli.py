"""The command line of `python -m pipelines.sagemaker_local` (make sagemaker-local)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from gtsrb.common.failure import StepError
from pipelines.local import work_lock
from pipelines.local.cli import add_run_flags, run_options
from pipelines.sagemaker.cli_args import quiet_sdk
from pipelines.sagemaker_local.runner import EXIT_FAILED, Options, SageMakerLocalRun

EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    """The flags; make sagemaker-local passes the same ones."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.sagemaker_local",
                                     description="The SageMaker pipeline executed by the SageMaker SDK's local mode.")
    add_run_flags(parser, Path("runs/sagemaker-local"))  # --hp: a key with a pipeline parameter (epochs -> Epochs,
    # ..., settings.HYPERPARAMETER_OF) is overridden at start; any other, and preset, is fixed when built
    parser.add_argument("--tag", required=True, help="tag of the cpu image (gtsrb-mxnet-cpu:<tag>; make passes the git SHA)")
    parser.add_argument("--registry", default="", help="registry host of the image (default: a local name)")
    return parser


def parse_args(argv: list[str] | None = None) -> Options:
    """The command line, checked (argparse exits 2 with a clear message on a bad flag)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return Options(**run_options(parser, args), image_tag=args.tag, image_registry=args.registry)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C (compose stops the containers)


def main(argv: list[str] | None = None) -> int:
    """Run; return the exit code (0 registered, 1 failed, 3 below threshold, 130 interrupted)."""
    options = parse_args(argv)
    quiet_sdk()
    signal.signal(signal.SIGTERM, _terminate)
    start = time.monotonic()
    try:
        with work_lock.hold(options.work):
            code = SageMakerLocalRun(options).run()
    except StepError as err:
        print(f"\nERROR: {err}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    print(f"total       {time.monotonic() - start:.1f}s", flush=True)
    return code
