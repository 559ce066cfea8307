"""`python -m pipelines.local.ui` (make ui): MLflow's UI on the store every local run logs to.

The store is registry.tracking_uri(WORK) (MLFLOW_TRACKING_URI, else mlflow.db beside WORK), so
`make ui` shows what `make demo` logged without an activated venv or a typed URI.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines.local import mlflow_registry as registry

DEFAULT_PORT = 5000
# MLflow's background job runner (GenAI evaluation jobs) would start several more processes.
UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def command(work: Path, host: str, port: int) -> list[str]:
    """The `mlflow ui` command line of the venv's MLflow on WORK's store."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [str(mlflow), "ui", "--backend-store-uri", registry.tracking_uri(work), "--host", host, "--port", str(port),
            "--workers", "1"]  # one person browsing; MLflow's default of 4 takes a minute to start on 2 cores


def main(argv: list[str] | None = None) -> int:
    """Check the store exists, say what is served where, then become `mlflow ui`."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.local.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/demo"), help="any WORK of the store (default runs/demo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    if not registry.store_exists(args.work):
        print(f"ERROR: no MLflow store at {registry.tracking_uri(args.work)} yet: run `make demo` first "
              "(or set WORK= / MLFLOW_TRACKING_URI=).", file=sys.stderr)
        return 2
    argv = command(args.work, args.host, args.port)
    print(f">> MLflow UI on http://{args.host}:{args.port} for {registry.tracking_uri(args.work)} (Ctrl-C stops)", flush=True)
    os.environ.update({k: v for k, v in {**registry.QUIET_ENV, **UI_ENV}.items() if k not in os.environ})
    os.execv(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
