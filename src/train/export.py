"""Write the model directory from the best checkpoint's weights.

The exported graph is built from a fresh float32 network. After `amp.init()` (GPU training)
MXNet's operators are patched to insert float16 casts, and a graph exported then would carry
them into evaluation and serving on CPU; so with AMP the export runs in a fresh process
(`python -m gtsrb.train.export REQUEST.json`), without AMP it runs in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import mxnet as mx

from gtsrb.common.failure import StepError
from gtsrb.common.model_io import save_model
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.train.model import create_network

ERROR_PREFIX = "ERROR: "


def export(params_file: Path, model_dir: Path, hyperparameters: dict, history: list[dict], class_names: list[str]) -> None:
    """Build the float32 network, load `params_file`, and save the model directory."""
    image_size = int(hyperparameters["image_size"])
    net = create_network(str(hyperparameters["model"]), len(class_names))
    net.load_parameters(str(params_file), ctx=mx.cpu())
    net.hybridize()
    net(mx.nd.zeros((1, 3, image_size, image_size)))  # export needs one forward of the hybridized net
    save_model(net, model_dir, Preprocessing.for_hyperparameters(hyperparameters), hyperparameters, history, class_names)


def export_in_fresh_process(
    params_file: Path, model_dir: Path, hyperparameters: dict, history: list[dict], class_names: list[str]
) -> None:
    """Run export() in a new Python process (no AMP-patched operators)."""
    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"params": str(params_file), "model_dir": str(model_dir),
                                       "hyperparameters": hyperparameters, "history": history,
                                       "class_names": class_names}))
        done = subprocess.run([sys.executable, "-m", "gtsrb.train.export", str(request)], capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        if last.startswith(ERROR_PREFIX):  # a StepError of the child (a full disk): its sentence as is
            raise StepError(last.removeprefix(ERROR_PREFIX))
        raise StepError(f"exporting the model into {model_dir} failed: {done.stderr.strip()[-600:]}")


def main() -> None:
    """`python -m gtsrb.train.export REQUEST.json` (see export_in_fresh_process)."""
    request = json.loads(Path(sys.argv[1]).read_text())
    try:
        export(Path(request["params"]), Path(request["model_dir"]), request["hyperparameters"], request["history"],
               request["class_names"])
    except StepError as err:
        sys.exit(f"{ERROR_PREFIX}{err}")


if __name__ == "__main__":
    main()  # a traceback on stderr is what the parent reports
