"""`python -m pipelines.local`: see pipelines/local/__init__.py."""

import sys

from pipelines.local.cli import main

sys.exit(main())
