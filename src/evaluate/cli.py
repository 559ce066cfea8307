"""`python -m gtsrb.evaluate`: the command line and the SageMaker Processing entry point.

Defaults are the container paths the pipeline mounts (contract.EVALUATE_*), so the Processing
job needs no arguments; locally pass --model, --test and --output.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

from gtsrb.common import contract, sagemaker_job
from gtsrb.common.failure import run_step
from gtsrb.evaluate.step import DEFAULT_BATCH_SIZE, evaluate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The step's flags; every default is the SageMaker Processing path."""
    parser = argparse.ArgumentParser(
        prog="python -m gtsrb.evaluate",
        description="Evaluate a trained GTSRB model on the test split: evaluation.json (SageMaker "
        "model-quality format), predictions.csv (one row per test image), per_class.csv, confusion_matrix.png, "
        "confusion_matrix_normalised.png, misclassified.png.",
    )
    parser.add_argument("--model", type=Path, default=contract.EVALUATE_MODEL_INPUT,
                        help="model directory, model.tar.gz, or a folder holding model.tar.gz")
    parser.add_argument("--test", type=Path, default=contract.EVALUATE_TEST_INPUT,
                        help="folder with test.rec/.idx from the prepare step")
    parser.add_argument("--output", type=Path, default=contract.EVALUATE_OUTPUT, help="folder for the report")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per forward pass")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the step; on failure log one sentence, write /opt/ml/output/message, return 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    return run_step(partial(evaluate, args.model, args.test, args.output, args.batch_size), sagemaker_job.PROCESSING_FAILURE_FILE)
