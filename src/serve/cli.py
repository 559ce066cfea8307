"""`python -m gtsrb.serve` (and `serve` in the images): the model server.

In a SageMaker hosting container it runs with no arguments: the model in /opt/ml/model, the port
8080 or SAGEMAKER_BIND_TO_PORT. Locally: --model DIR | model.tar.gz, --port N (`make serve` resolves
a registry URI, models:/..., to its model.tar.gz on the host first).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gtsrb.common.failure import StepError
from gtsrb.serve import protocol
from gtsrb.serve.server import LOG_FORMAT, serve, settings_from_env

EXIT_BAD_MODEL = 2  # the model source does not exist


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's flags; defaults are the SageMaker hosting contract."""
    parser = argparse.ArgumentParser(prog="python -m gtsrb.serve", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="accepted for `docker run IMAGE serve`")
    parser.add_argument("--model", default=protocol.MODEL_DIR,
                        help="model directory or model.tar.gz")
    parser.add_argument("--port", type=int, default=int(os.environ.get(protocol.ENV_PORT) or protocol.DEFAULT_PORT))
    parser.add_argument("--host", default="0.0.0.0")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Resolve the model, then serve until stopped; exit 2 with one sentence on a bad model source."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = parse_args(argv)
    try:
        model = Path(args.model)
        if not model.exists():
            raise StepError(f"{model}: no such model directory or model.tar.gz; pass --model (make serve MODEL=...).")
    except StepError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return EXIT_BAD_MODEL
    settings = settings_from_env(str(model))
    logging.getLogger("gtsrb.serve").info(
        "event=starting model=%s port=%d workers=%d batch=%s max_payload_mb=%g",
        model, args.port, settings.workers, settings.batch, settings.max_payload_mb,
    )
    serve(settings, args.port, args.host)
    return 0
