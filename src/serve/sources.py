"""Where a model comes from: a model directory, a model.tar.gz, or the local MLflow registry.

`models:/<name>/<version>` and `models:/<name>@<alias>` name a version registered by the local
pipeline (`make demo`); its source is the model.tar.gz the registry logged.
"""

from __future__ import annotations

import re
from pathlib import Path

from gtsrb.common.failure import StepError

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


def is_registry_uri(source: str) -> bool:
    """Whether `source` looks like a registry URI rather than a path."""
    return source.startswith("models:/")


def resolve(source: str | Path, registry: str | Path) -> Path:
    """The local directory or model.tar.gz of `source`; `registry` is the WORK folder of `make demo`."""
    text = str(source)
    if not is_registry_uri(text):
        return Path(text)
    match = REGISTRY_URI.match(text)
    if not match:
        raise StepError(f"{text}: not a registry URI; use models:/<name>/<version> or models:/<name>@<alias>.")
    try:
        from pipelines.local.mlflow_registry import version_source  # the CI/laptop side; images serve /opt/ml/model
    except ImportError as err:
        raise StepError(f"{text}: registry URIs need the project's pipelines package ({err}); pass a model path.") from err
    return Path(version_source(registry, match["name"], match["version"], match["alias"]))
