"""The trained-model directory: written by the train step, read by evaluate and by a server.

Layout (contract.py names): model-symbol.json + model-0000.params (the exported hybridized
network: input `data`, NCHW float32, output logits), classes.json, preprocessing.json,
hyperparameters.json, history.json. SageMaker tars the directory as model.tar.gz.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx

from gtsrb.common import contract
from gtsrb.common.classes import check_class_names, write_class_names
from gtsrb.common.failure import StepError, first_line, write_failed
from gtsrb.common.preprocessing import Preprocessing


def save_model(
    net: mx.gluon.HybridBlock,
    model_dir: str | Path,
    prep: Preprocessing,
    hyperparameters: dict,
    history: list[dict],
    class_names: list[str],
) -> None:
    """Export a hybridized, already-run network and everything needed to use it (its class
    names in output order: the training data's, never a built-in table).

    Every file is written into a hidden folder inside `model_dir` first and renamed into place
    only when all are written: a full disk leaves no partial file under a final name (StepError
    naming the folder and its free space).
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=model_dir))
    try:
        net.export(str(partial / contract.MODEL_PREFIX), epoch=0)
        write_class_names(partial, class_names)
        prep.save(partial / contract.PREPROCESSING_FILE)
        (partial / contract.HYPERPARAMETERS_FILE).write_text(json.dumps(hyperparameters, indent=2) + "\n")
        (partial / contract.HISTORY_FILE).write_text(json.dumps(history, indent=2) + "\n")
        for path in sorted(partial.iterdir()):
            os.replace(path, model_dir / path.name)
    except (OSError, mx.base.MXNetError) as err:
        raise write_failed(model_dir, "the model", err) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def archive_model(model_dir: str | Path, archive: str | Path) -> Path:
    """Tar the model directory's files at the archive root, as SageMaker does with SM_MODEL_DIR."""
    archive = Path(archive)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return archive


@dataclass
class LoadedModel:
    """A model ready to predict, with its input contract and class names."""

    net: mx.gluon.SymbolBlock
    preprocessing: Preprocessing
    class_names: list[str]
    hyperparameters: dict
    source: Path


def load_model(path: str | Path, ctx: mx.Context, workdir: str | Path | None = None) -> LoadedModel:
    """Load from a model directory or a model.tar.gz (extracted into `workdir` or a temp dir)."""
    path = Path(path)
    if path.is_dir() and (path / contract.MODEL_ARCHIVE).is_file() and not (path / contract.SYMBOL_FILE).is_file():
        path = path / contract.MODEL_ARCHIVE  # a SageMaker processing input folder holding the archive
    model_dir = _extract(path, workdir) if path.is_file() else path
    if not model_dir.is_dir():
        raise StepError(f"{path}: no such model directory or model.tar.gz; pass the train step's output.")
    needed = (contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE)
    missing = [n for n in needed if not (model_dir / n).is_file()]
    if missing:
        raise StepError(f"{path}: the model is incomplete, missing {', '.join(missing)}; re-run the train step.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = mx.gluon.SymbolBlock.imports(
                str(model_dir / contract.SYMBOL_FILE), ["data"], str(model_dir / contract.PARAMS_FILE), ctx=ctx
            )
        prep = Preprocessing.load(model_dir / contract.PREPROCESSING_FILE)
        class_names = json.loads((model_dir / contract.CLASSES_FILE).read_text(encoding="utf-8"))
        check_class_names(class_names, model_dir / contract.CLASSES_FILE)
        hps_file = model_dir / contract.HYPERPARAMETERS_FILE
        hps = json.loads(hps_file.read_text()) if hps_file.is_file() else {}
    # TypeError: valid JSON of the wrong type, e.g. a list where preprocessing.json needs an object
    except (mx.base.MXNetError, ValueError, KeyError, TypeError, OSError) as err:
        raise StepError(f"{path}: the model files are corrupt ({first_line(err)}); re-run the train step.") from err
    return LoadedModel(net=net, preprocessing=prep, class_names=class_names, hyperparameters=hps, source=path)


def _extract(archive: Path, workdir: str | Path | None) -> Path:
    """Extract a model.tar.gz safely (no absolute or parent paths) and return the folder."""
    target = Path(workdir or tempfile.mkdtemp(prefix="model-"))
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():  # the images' Debian Python 3.11.2 has no extraction filter
                if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise tarfile.TarError(f"unsafe member {member.name!r}")
            tar.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise StepError(f"{archive}: not a readable model.tar.gz ({err}); re-run the train step.") from err
    return target
