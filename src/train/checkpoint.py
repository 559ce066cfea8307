"""Checkpoints in SageMaker's checkpoint folder (synced to S3 for spot training).

Each checkpoint is a folder `step-EEEE-SSSSSS` (epochs done, batches done in the next epoch)
holding net.params, optimizer.params + optimizer.json (optimiser state and AMP loss scale,
no pickle: see optimizer.py) and state.json. It is written under a temporary name and renamed
into place, state.json last. A checkpoint counts as complete only when all its files are there
(S3 sync uploads file by file, so after an interruption state.json can exist without the
weights); `resume` tries the complete ones newest first and skips, with a logged reason, any
that does not load. We keep the newest checkpoint and the one of the best epoch (its weights
become the model); older ones are deleted.

The state records a key of the training data (`data_key`): a checkpoint made on other data is
never resumed (the caller starts fresh).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mxnet as mx
from mxnet import gluon

from gtsrb.common import contract
from gtsrb.common.failure import StepError, write_failed
from gtsrb.train import optimizer

log = logging.getLogger(__name__)

NET_FILE, STATE_FILE = "net.params", "state.json"
OPTIMIZER_ARRAYS, OPTIMIZER_JSON = "optimizer.params", "optimizer.json"
FILES: tuple[str, ...] = (NET_FILE, OPTIMIZER_ARRAYS, OPTIMIZER_JSON, STATE_FILE)
_NAME = re.compile(r"^step-(\d{4})-(\d{6})$")


@dataclass
class TrainingState:
    """Everything besides weights and optimiser state that a resumed run needs."""

    epochs_done: int = 0  # complete epochs
    step_in_epoch: int = 0  # batches already done in epoch `epochs_done` (SIGTERM mid-epoch)
    partial: dict = field(default_factory=dict)  # running sums of the interrupted epoch
    history: list[dict] = field(default_factory=list)  # one epoch_line() dict per epoch
    best_val_acc: float = -1.0
    best_checkpoint: str = ""  # folder name of the best epoch's checkpoint
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    seed: int = 0  # every RNG is seeded from (seed, epoch): nothing else to save
    hyperparameters: dict = field(default_factory=dict)
    data_key: str = ""  # data_key() of the channels this run trains on

    @property
    def name(self) -> str:
        """The folder name of a checkpoint of this state."""
        return f"step-{self.epochs_done:04d}-{self.step_in_epoch:06d}"


def data_key(*splits: contract.RecordFiles) -> str:
    """A short hash of the splits' indexes and record-file sizes: changes when the data does."""
    digest = hashlib.sha256()
    for files in splits:
        digest.update(files.idx.read_bytes())
        digest.update(str(files.rec.stat().st_size).encode())
    return digest.hexdigest()[:16]


def save(folder: Path, net: gluon.HybridBlock, trainer: gluon.Trainer, state: TrainingState) -> Path:
    """Write a complete checkpoint atomically; prune the ones no longer needed."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / state.name
    tmp = folder / f".tmp-{state.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        net.save_parameters(str(tmp / NET_FILE))
        optimizer.save_states(trainer, tmp / OPTIMIZER_ARRAYS, tmp / OPTIMIZER_JSON)
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
    except (OSError, mx.base.MXNetError) as err:  # a full disk: the earlier checkpoints stay as they were
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failed(folder, f"the checkpoint {state.name}", err) from None
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _prune(folder, keep={final.name, state.best_checkpoint})
    log.info("event=checkpoint path=%s", final)
    return final


def _prune(folder: Path, keep: set[str]) -> None:
    """Delete complete checkpoints not in `keep` and leftovers of interrupted writes."""
    for path in folder.iterdir():
        if path.is_dir() and path.name not in keep and (_NAME.match(path.name) or path.name.startswith(".tmp-")):
            shutil.rmtree(path, ignore_errors=True)


def is_complete(path: Path) -> bool:
    """True if the folder is named like a checkpoint and holds every checkpoint file."""
    return bool(_NAME.match(path.name)) and all((path / name).is_file() for name in FILES)


def complete(folder: Path) -> list[Path]:
    """The complete checkpoints in `folder`, newest first."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_complete(p)), key=lambda p: p.name, reverse=True)


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, if any (it may still fail to load)."""
    found = complete(folder)
    return found[0] if found else None


def load_state(path: Path) -> TrainingState:
    """The TrainingState of a checkpoint folder; StepError naming the file if it is damaged."""
    try:
        values = json.loads((path / STATE_FILE).read_text())
        return TrainingState(**values)
    except (OSError, ValueError, TypeError) as err:
        raise StepError(f"{path / STATE_FILE} is not a training state ({err})") from err


def restore(path: Path, net: gluon.HybridBlock, trainer: gluon.Trainer) -> TrainingState:
    """Load weights and optimiser state from a checkpoint folder; return its TrainingState.

    Every file is read and checked before the network or trainer is touched, so a damaged
    checkpoint raises StepError and leaves both as they were.
    """
    state = load_state(path)
    _check_params(path / NET_FILE, net)
    saved = optimizer.read_states(path / OPTIMIZER_ARRAYS, path / OPTIMIZER_JSON)
    net.load_parameters(str(path / NET_FILE), ctx=net.collect_params().list_ctx())
    optimizer.apply_states(trainer, saved)
    return state


def _check_params(params_file: Path, net: gluon.HybridBlock) -> None:
    """Fail unless the file loads and holds exactly the network's parameters with their shapes."""
    try:
        loaded = mx.nd.load(str(params_file))
    except mx.base.MXNetError as err:
        raise StepError(f"{params_file} cannot be loaded ({optimizer.first_line(err)})") from err
    expected = {name: p.shape for name, p in net._collect_params_with_prefix().items()}
    found = {name: a.shape for name, a in loaded.items()} if isinstance(loaded, dict) else {}
    if found != expected:
        differ = sorted(set(expected) ^ set(found)) or sorted(k for k in expected if expected[k] != found[k])
        raise StepError(f"{params_file} does not hold this network's parameters (first difference: {differ[0]})")
