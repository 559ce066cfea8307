"""`python -m pipelines.sagemaker_local` (make sagemaker-local)."""

import sys

from pipelines.sagemaker_local.cli import main

sys.exit(main())
