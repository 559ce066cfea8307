"""ImageNet weights from the gluoncv model zoo, baked into the image at build time.

Training jobs may run with network isolation, so the train step never downloads: it reads
`$MXNET_HOME/models/{name}-{short_hash}.params` (where gluoncv's own download puts it) and
fails with a clear sentence when the file is absent. The Docker build runs
`python -m gtsrb.train.pretrained download` to put BAKED_BACKBONES there (in a stage on the CPU
wheel: importing gluoncv imports mxnet, and the GPU mxnet cannot be imported without a driver).
`download --from DIR` bakes offline from pre-downloaded zoo files (`{name}-{short_hash}.zip` as
served, or the `.params` inside), each checked against gluoncv's sha1 table.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import zipfile
from pathlib import Path

from gluoncv.model_zoo import model_store
from gluoncv.utils import check_sha1

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError, run_step

log = logging.getLogger(__name__)

# Backbones whose ImageNet weights the GPU image carries: the default and two alternatives
# (a faster ResNet, and a mobile net for cheap inference).
DEFAULT_BACKBONE = "resnet50_v1d"
BAKED_BACKBONES: tuple[str, ...] = (DEFAULT_BACKBONE, "resnet18_v1b", "mobilenetv3_large")


def models_dir() -> Path:
    """Where gluoncv keeps zoo weights: $MXNET_HOME/models, default ~/.mxnet/models."""
    return Path(os.environ.get("MXNET_HOME", str(Path.home() / ".mxnet"))).expanduser() / "models"


def imagenet_params_path(name: str) -> Path:
    """The cached ImageNet weights of zoo model `name`; a clear error when they are not there."""
    try:
        file_name = f"{name}-{model_store.short_hash(name)}.params"
    except ValueError as err:
        raise StepError(f"the gluoncv zoo has no ImageNet weights for model={name!r}; train with pretrained=none.") from err
    path = models_dir() / file_name
    if not path.is_file():
        raise StepError(
            f"ImageNet weights for {name} are not in the image ({path} is missing) and training does "
            f"not download: bake them with `python -m gtsrb.train.pretrained download {name}`, give "
            f"a `pretrained` channel, or train with pretrained=none."
        )
    return path


def download(names: list[str]) -> list[Path]:
    """Download (and sha1-check) the zoo weights of `names` into models_dir(); return the files."""
    paths = []
    for name in names:
        log.info("event=download model=%s into=%s", name, models_dir())
        # get_model_file honours MXNET_HOME and verifies the sha1 of what it fetched.
        paths.append(Path(model_store.get_model_file(name, root=str(models_dir()))))
        for leftover in models_dir().glob(f"{name}-*.lock"):
            leftover.unlink(missing_ok=True)  # gluoncv leaves lock files; the image needs none
    return paths


def zoo_file_name(name: str) -> str:
    """`{name}-{short_hash}`, gluoncv's file stem for zoo model `name` (a clear error if unknown)."""
    try:
        return f"{name}-{model_store.short_hash(name)}"
    except ValueError as err:
        raise StepError(f"the gluoncv zoo has no ImageNet weights for {name!r}; nothing to bake.") from err


def copy_from(folder: Path, names: list[str]) -> list[Path]:
    """Bake `names` from pre-downloaded zoo files in `folder` (no network), sha1-checked."""
    paths = []
    models_dir().mkdir(parents=True, exist_ok=True)
    for name in names:
        stem = zoo_file_name(name)
        target = models_dir() / f"{stem}.params"
        if (folder / f"{stem}.params").is_file():
            shutil.copyfile(folder / f"{stem}.params", target)
        elif (folder / f"{stem}.zip").is_file():
            with zipfile.ZipFile(folder / f"{stem}.zip") as zf:
                zf.extract(f"{stem}.params", models_dir())
        else:
            raise StepError(f"{folder} has neither {stem}.zip nor {stem}.params: put the zoo file for {name} there.")
        if not check_sha1(str(target), model_store._model_sha1[name]):
            target.unlink()
            raise StepError(f"{folder}/{stem}.*: its sha1 is not gluoncv's for {name}; download it again.")
        log.info("event=baked model=%s from=%s into=%s", name, folder, models_dir())
        paths.append(target)
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m gtsrb.train.pretrained download [--from DIR] [names...]` (default: BAKED_BACKBONES)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="python -m gtsrb.train.pretrained", description=__doc__)
    parser.add_argument("command", choices=["download"])
    parser.add_argument("--from", dest="folder", type=Path, help="bake from pre-downloaded zoo files here (offline)")
    parser.add_argument("names", nargs="*")
    args = parser.parse_intermixed_args(argv)  # names may follow --from DIR
    names = args.names or list(BAKED_BACKBONES)
    for path in copy_from(args.folder, names) if args.folder else download(names):
        print(f"baked {path}")


if __name__ == "__main__":
    raise SystemExit(run_step(main, sagemaker_job.PROCESSING_FAILURE_FILE))
