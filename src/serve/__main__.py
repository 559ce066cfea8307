"""`python -m gtsrb.serve`: see gtsrb.serve.cli."""

import sys

from gtsrb.serve.cli import main

sys.exit(main())
