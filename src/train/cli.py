"""The train step's entry point: `gtsrb-train`, `python -m gtsrb.train`, or SageMaker's
/opt/ml/code/train.py (`from gtsrb.train.cli import main; main()`).

The step itself (parse -> check data -> build model -> resume -> fit -> export) is
gtsrb.train.step. Any failure writes one sentence plus the traceback to /opt/ml/output/failure
and exits 1 (gtsrb.common.failure.run_step).
"""

from __future__ import annotations

import logging
import sys

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import run_step
from gtsrb.train.step import launch_or_train


def configure_logging() -> None:
    """key=value lines on stdout: SageMaker's metric regexes read the job's stdout."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)


def main() -> None:
    """Console entry point: exit 0 on success (or a clean SIGTERM stop), 1 with a failure file."""
    configure_logging()
    sys.exit(run_step(lambda: launch_or_train(sys.argv[1:]), sagemaker_job.TRAINING_FAILURE_FILE))
