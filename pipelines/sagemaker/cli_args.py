"""What the two pipeline CLIs share: --module-name / --kwargs, JSON arguments, loading get_pipeline.

The flags are those of the SageMaker MLOps template's `get-pipeline-definition` and
`run-pipeline`, so its codebuild-buildspec works unchanged.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from typing import Any

from gtsrb.common.failure import StepError, failure_of, report_failure

DEFAULT_MODULE = "pipelines.sagemaker.definition"


def add_pipeline_args(parser: argparse.ArgumentParser) -> None:
    """--module-name and --kwargs (the get_pipeline kwargs as a JSON object)."""
    parser.add_argument("-n", "--module-name", default=DEFAULT_MODULE, help=f"module with get_pipeline (default {DEFAULT_MODULE})")
    parser.add_argument(
        "-kwargs", "--kwargs", default="{}",
        help='get_pipeline kwargs as JSON, e.g. \'{"region": "eu-west-1", "role": "arn:...", "image_tag": "abc1234"}\'',
    )


def parse_json(flag: str, text: str | None, kind: type) -> Any:
    """A JSON argument of the expected kind (dict or list), or a clear error naming the flag."""
    if text is None or text == "":
        return kind()
    try:
        value = json.loads(text)
    except ValueError as err:
        raise StepError(f"{flag} is not valid JSON ({err}): {text[:200]}") from None
    if not isinstance(value, kind):
        raise StepError(f"{flag} must be a JSON {'object' if kind is dict else 'array'}, got: {text[:200]}")
    return value


def build_pipeline(module_name: str, kwargs_json: str):
    """Import module_name and call its get_pipeline(**kwargs)."""
    kwargs = parse_json("--kwargs", kwargs_json, dict)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise StepError(f"--module-name {module_name}: cannot import it ({err}).") from None
    if not hasattr(module, "get_pipeline"):
        raise StepError(f"--module-name {module_name} has no get_pipeline(**kwargs).")
    return module.get_pipeline(**kwargs)


def quiet_sdk() -> None:
    """Keep the SDK's expected build-time chatter (popped job names, "No Wait, No Logs") off the log."""
    import logging
    import warnings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("sagemaker", "sagemaker.config", "botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


def run_tool(main: Callable[[], None]) -> int:
    """gtsrb.common.failure.run_step for a command-line tool off SageMaker (the CI runner): the same
    sentence and exit code 1, and no failure file (that file is for the steps in the images)."""
    failed = failure_of(main)
    if failed is None:
        return 0
    report_failure(failed[0])
    return 1
