"""The trained model as an MLflow pyfunc (MLflow removed its Gluon flavor), so that MLflow lists,
loads and serves it: `mlflow.pyfunc.load_model("models:/gtsrb-traffic-signs/1")`.

The pyfunc carries the model directory (what model.tar.gz holds) as its artifact `model_dir`;
`make serve` serves that directory with our own server. Input: a DataFrame with a `path` column
(image files) or an `image` column (the file's bytes, or base64 text); output: one row per image
with class_id, class_name and probability, or the reason it could not be read.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd

from pipelines.local.mlflow_registry import TRACKING_URI_ENV

MODEL_NAME = "classifier"  # the logged model's name in its run (not "model": the run's model/ folder holds model.tar.gz)
MODEL_DIR_ARTIFACT = "model_dir"
DISTRIBUTION = "gtsrb-sagemaker"


class TrafficSignModel(mlflow.pyfunc.PythonModel):
    """gtsrb.serve.predictor.Predictor behind MLflow's pyfunc interface."""

    def load_context(self, context) -> None:
        """Load the model directory once per process."""
        from gtsrb.serve.predictor import Predictor

        self.predictor = Predictor.load(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """One row per input image: top class, its name and probability, or an error."""
        from gtsrb.serve.predictor import ImageError

        if "path" in model_input:
            images = [Path(p).read_bytes() for p in model_input["path"]]
        else:
            images = [v if isinstance(v, bytes) else base64.b64decode(v) for v in model_input["image"]]
        rows = []
        for raw in images:
            try:
                probs = self.predictor.probabilities([self.predictor.image_input(raw)])[0]
            except ImageError as err:
                rows.append({"class_id": -1, "class_name": "", "probability": 0.0, "error": str(err)})
                continue
            best = int(probs.argmax())
            rows.append({"class_id": best, "class_name": self.predictor.class_names[best],
                         "probability": float(probs[best]), "error": ""})
        return pd.DataFrame(rows)


def model_dir(root: str | Path) -> Path:
    """The model directory inside a logged pyfunc model's folder (as its MLmodel file records it)."""
    from mlflow.models import Model

    flavor = Model.load(str(root)).flavors[mlflow.pyfunc.FLAVOR_NAME]
    return Path(root) / flavor["artifacts"][MODEL_DIR_ARTIFACT]["path"]


def requirements() -> list[str]:
    """The project's own pinned runtime requirements (no inference: that would load the model)."""
    return [r for r in metadata.requires(DISTRIBUTION) or [] if "extra ==" not in r]


@contextmanager
def default_store(tracking_uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to `tracking_uri` for a while: MLflow resolves a
    `models:/m-<id>` source (create_model_version, list_artifacts) through it, whatever the
    client's own URI. MLflow also writes it into MLFLOW_TRACKING_URI, which is put back as it was."""
    before = os.environ.get(TRACKING_URI_ENV)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # unset: MLflow resolves from the environment again
        if before is not None:
            os.environ[TRACKING_URI_ENV] = before


def log(tracking_uri: str, run_id: str, model_dir: Path) -> mlflow.models.model.ModelInfo:
    """Log `model_dir` as a pyfunc model of the (open) run `run_id`."""
    with default_store(tracking_uri), mlflow.start_run(run_id=run_id, log_system_metrics=False):
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # its advice on CloudPickle: a class of ours
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME, python_model=TrafficSignModel(), artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            pip_requirements=requirements(),
        )
