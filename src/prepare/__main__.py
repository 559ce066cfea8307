"""`python -m gtsrb.prepare`: see gtsrb.prepare.cli."""

from gtsrb.prepare.cli import main

main()
