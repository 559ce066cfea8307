"""`python -m gtsrb.demo_data`: see gtsrb.demo_data.cli."""

from gtsrb.demo_data.cli import main

main()
