"""`python -m gtsrb.evaluate ...`: see gtsrb.evaluate.cli."""

import sys

from gtsrb.evaluate.cli import main

sys.exit(main())
