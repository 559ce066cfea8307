"""CLI of the prepare step, on local paths or as a SageMaker Processing entry point.

    python -m gtsrb.prepare --input DIR --output DIR [--image-size 96] [--validation-fraction 0.1] ...

On SageMaker the defaults are the processing paths (contract.PREPARE_INPUT / PREPARE_OUTPUT).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from gtsrb.common import sagemaker_job
from gtsrb.common.contract import PREPARE_INPUT, PREPARE_OUTPUT
from gtsrb.common.failure import run_step
from gtsrb.prepare.step import PrepareOptions, prepare


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags: one per PrepareOptions field, plus input and output folders."""
    defaults = PrepareOptions()
    parser = argparse.ArgumentParser(prog="gtsrb-prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(PREPARE_INPUT),
                        help="data folder: GTSRB (official or Kaggle layout) or train/<class>/ folders (docs/data.md)")
    parser.add_argument("--output", default=str(PREPARE_OUTPUT), help="folder for train/ validation/ test/ manifest/")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="network input side (px)")
    parser.add_argument("--validation-fraction", type=float, default=defaults.validation_fraction)
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction,
                        help="folder-per-class data without test/: share of each class held out for test")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--allow-missing-test-classes", action="store_true",
                        help="accept a test split without some class (the evaluation report names them)")
    parser.add_argument("--roi-margin", type=float, default=defaults.roi_margin)
    parser.add_argument("--no-roi-crop", dest="roi_crop", action="store_false", help="pack whole images")
    parser.add_argument("--max-skipped-fraction", type=float, default=defaults.max_skipped_fraction)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="0 = one per CPU")
    parser.add_argument("--quality", type=int, default=defaults.quality, help="JPEG quality")
    parser.add_argument("--data-version", default="", help="the pipeline's DataVersion: only keys SageMaker's step cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the step; exit 1 with one clear sentence (and SageMaker's message file) on failure."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    fields = {f.name for f in dataclasses.fields(PrepareOptions)}
    options = PrepareOptions(**{k: v for k, v in vars(args).items() if k in fields})
    sys.exit(run_step(lambda: prepare(args.input, args.output, options), failure_file=sagemaker_job.PROCESSING_FAILURE_FILE))
