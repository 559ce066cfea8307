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
        from pipelines.registry import version_source  # the CI/laptop side; images serve /opt/ml/model
    except ImportError as err:
        raise StepError(f"{text}: registry URIs need the project's pipelines package ({err}); pass a model path.") from err
    return Path(version_source(registry, match["name"], match["version"], match["alias"]))


def newest_registered(work: str | Path) -> tuple[str, str]:
    """The registry URI of the newest version registered by WORK's runs, and a sentence saying which."""
    try:
        from pipelines import registry
    except ImportError as err:
        raise StepError(f"serving WORK's newest registered version needs the project's pipelines package ({err}).") from err
    version = registry.newest_registered(work)
    if version is None:
        raise StepError(
            f"no model version registered by {work} in {registry.tracking_uri(work)}: run `make demo` (a run below "
            f"the threshold registers nothing), or serve a model explicitly, e.g. MODEL={Path(work) / 'train' / 'model'}."
        )
    status = version.tags.get(registry.APPROVAL_TAG, "?")
    uri = f"models:/{version.name}/{version.version}"
    return uri, f"{uri}: the newest version registered by {work} ({status}, test accuracy {version.tags.get('test_accuracy', '?')})"
