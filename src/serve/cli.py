"""`python -m gtsrb.serve` (and `serve` in the images): the model server.

In a SageMaker hosting container it runs with no arguments: the model in /opt/ml/model, the port
8080 or SAGEMAKER_BIND_TO_PORT. Locally: --model DIR | model.tar.gz, --port N (`make serve` resolves
a registry URI, models:/..., to the registered model's path on the host first).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from gtsrb.common import contract
from gtsrb.common.failure import StepError
from gtsrb.serve import protocol
from gtsrb.serve.server import LOG_FORMAT, env_number, serve, settings_from_env

EXIT_BAD_MODEL = 2  # the model source does not exist


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The server's flags; defaults are the SageMaker hosting contract."""
    parser = argparse.ArgumentParser(prog="python -m gtsrb.serve", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="accepted for `docker run IMAGE serve`")
    parser.add_argument("--model", default=protocol.MODEL_DIR,
                        help="model directory or model.tar.gz")
    parser.add_argument("--port", type=int, default=None, help=f"default: {protocol.ENV_PORT}, else {protocol.DEFAULT_PORT}")
    parser.add_argument("--host", default="0.0.0.0", help="all interfaces, as SageMaker needs (make serve: 127.0.0.1)")
    return parser.parse_args(argv)


def checked_model(model: Path, scratch: Path) -> Path | None:
    """The model folder the workers load: a model.tar.gz is unpacked into `scratch` once, here.

    The check (load, class list against the network's output, one warm-up prediction) runs in a
    child process, so MXNet never loads in gunicorn's master; its ERROR line is the server's.
    None when the model is unusable.
    """
    archive = model.is_file() or ((model / contract.MODEL_ARCHIVE).is_file() and not (model / contract.SYMBOL_FILE).is_file())
    command = [sys.executable, "-m", "gtsrb.serve.predictor", str(model)]
    if archive:
        command += ["--unpack-to", str(scratch / "model")]
    if subprocess.run(command, check=False).returncode != 0:
        return None
    return scratch / "model" if archive else model


def stopped(signum: int, frame: object) -> None:
    """SIGTERM while the model is checked: a normal stop (the check process is killed, the scratch removed)."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Resolve and check the model, then serve until stopped; exit 2 with one sentence on a bad
    model or setting."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    args = parse_args(argv)
    try:
        model = Path(args.model)
        if not model.exists():
            raise StepError(f"{model}: no such model directory or model.tar.gz; pass --model (make serve MODEL=...).")
        settings = settings_from_env(str(model))
        port = args.port or int(env_number(protocol.ENV_PORT, int, protocol.DEFAULT_PORT, str(protocol.DEFAULT_PORT)))
    except StepError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return EXIT_BAD_MODEL
    scratch, master = Path(tempfile.mkdtemp(prefix="gtsrb-serve-")), os.getpid()
    signal.signal(signal.SIGTERM, stopped)  # until gunicorn installs its own handlers
    try:
        checked = checked_model(model, scratch)
        if checked is None:
            return EXIT_BAD_MODEL
        settings = replace(settings, model=str(checked))
        logging.getLogger("gtsrb.serve").info(
            "event=starting model=%s port=%d host=%s workers=%d batch=%s max_payload_mb=%g timeout_s=%g",
            model, port, args.host, settings.workers, settings.batch, settings.max_payload_mb, settings.timeout,
        )
        serve(settings, port, args.host)
    finally:
        if os.getpid() == master:  # a worker leaving through here (gunicorn's sys.exit) must not remove it
            shutil.rmtree(scratch, ignore_errors=True)
    return 0
