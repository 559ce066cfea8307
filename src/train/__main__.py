"""`python -m gtsrb.train [--train DIR --validation DIR --model-dir DIR] [--key value ...]`."""

from gtsrb.train.cli import main

main()
