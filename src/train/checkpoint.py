"""Checkpoints in SageMaker's checkpoint folder (synced to S3 for spot training).

Each checkpoint is a folder `step-EEEE-SSSSSS` (epochs done, batches done in the next epoch)
holding net.params, trainer.states and state.json. It is written under a temporary name and
renamed into place, and state.json is written last, so a folder with that name and a
state.json is complete. We keep the newest checkpoint and the one of the best epoch (its
weights become the model); older ones are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mxnet import gluon

log = logging.getLogger(__name__)

NET_FILE, TRAINER_FILE, STATE_FILE = "net.params", "trainer.states", "state.json"
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

    @property
    def name(self) -> str:
        """The folder name of a checkpoint of this state."""
        return f"step-{self.epochs_done:04d}-{self.step_in_epoch:06d}"


def save(folder: Path, net: gluon.HybridBlock, trainer: gluon.Trainer, state: TrainingState) -> Path:
    """Write a complete checkpoint atomically; prune the ones no longer needed."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / state.name
    tmp = folder / f".tmp-{state.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    net.save_parameters(str(tmp / NET_FILE))
    trainer.save_states(str(tmp / TRAINER_FILE))
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
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


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, if any."""
    if not folder.is_dir():
        return None
    complete = [p for p in folder.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()]
    return max(complete, key=lambda p: p.name, default=None)


def load_state(path: Path) -> TrainingState:
    """The TrainingState of a checkpoint folder."""
    return TrainingState(**json.loads((path / STATE_FILE).read_text()))


def restore(path: Path, net: gluon.HybridBlock, trainer: gluon.Trainer) -> TrainingState:
    """Load weights and optimiser state from a checkpoint folder; return its TrainingState."""
    net.load_parameters(str(path / NET_FILE), ctx=net.collect_params().list_ctx())
    trainer.load_states(str(path / TRAINER_FILE))
    return load_state(path)
