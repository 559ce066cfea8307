"""Checkpoints: optimiser state without pickle (a crafted file runs no code), keyed by the training
data, a damaged newest checkpoint falls back to an older complete one, SIGINT stops like SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train import checkpoint
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Run, finish_epoch, train_epoch
from gtsrb.train.step import prepare_run, resume_or_start
from testkit.train import FAST_HPS, IMAGE_SIZE, balanced_labels, run_module, write_split

HP = Hyperparameters.from_mapping({**FAST_HPS, "optimizer": "adam", "lr": "0.001"})  # Adam: moments and update counts


def new_run(channels: dict[str, Path], folder: Path) -> Run:
    env = Environment(channels["train"], channels["validation"], None, folder / "model", folder / "ckpt", 0)
    return prepare_run(env, HP)


@pytest.fixture(scope="module")
def epoch_one(channels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A run after one epoch, its checkpoint step-0001-000000 written (read-only: tests copy it)."""
    run = new_run(channels, tmp_path_factory.mktemp("epoch_one"))
    state = resume_or_start(run)
    finish_epoch(run, state, 0, train_epoch(run, state, epoch=0), 0.0)
    return run


@pytest.fixture
def folder(epoch_one: Run, tmp_path: Path) -> Path:
    """This test's run folder: a copy of epoch_one's checkpoints in folder/ckpt."""
    shutil.copytree(epoch_one.checkpoint_dir, tmp_path / "ckpt")
    return tmp_path


def newer_copy(folder: Path, step: int = 7) -> Path:
    """A copy of the epoch checkpoint under a newer name (as if written mid-epoch 2)."""
    good = folder / "ckpt" / "step-0001-000000"
    copy = Path(shutil.copytree(good, folder / "ckpt" / f"step-0001-{step:06d}"))
    state = json.loads((copy / checkpoint.STATE_FILE).read_text())
    (copy / checkpoint.STATE_FILE).write_text(json.dumps({**state, "step_in_epoch": step}))
    return copy


def states(run: Run) -> dict[int, np.ndarray]:
    """The optimiser state arrays of the first device, by parameter index."""
    return {i: np.concatenate([s.asnumpy().ravel() for s in state]) for i, state in run.trainer._updaters[0].states.items()}


def test_optimizer_state_round_trips_without_unpickling(epoch_one: Run, channels: dict[str, Path], folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    saved = folder / "ckpt" / "step-0001-000000"
    assert sorted(p.name for p in saved.iterdir()) == sorted(checkpoint.FILES)
    resumed = new_run(channels, folder)
    state = resume_or_start(resumed)
    assert state.epochs_done == 1 and len(states(resumed)) == len(states(epoch_one)) > 0
    for index, values in states(epoch_one).items():
        np.testing.assert_array_equal(states(resumed)[index], values)
    assert resumed.trainer._optimizer._index_update_count == epoch_one.trainer._optimizer._index_update_count


class Payload:
    """Unpickling this runs a shell command (what an attacker would write into a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("target", [checkpoint.OPTIMIZER_ARRAYS, checkpoint.OPTIMIZER_JSON, checkpoint.NET_FILE])
def test_a_crafted_pickle_runs_no_code(folder: Path, channels: dict[str, Path], target: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    marker = folder / "pwned"
    crafted = newer_copy(folder)
    (crafted / target).write_bytes(pickle.dumps(Payload(marker)))
    (crafted / "trainer.states").write_bytes(pickle.dumps(Payload(marker)))  # the old format's file
    caplog.set_level(logging.INFO)
    state = resume_or_start(new_run(channels, folder))
    assert not marker.exists()
    assert state.epochs_done == 1 and state.step_in_epoch == 0  # the older, intact checkpoint
    assert f"event=checkpoint_skipped checkpoint={crafted}" in caplog.text


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda c: truncate(c / checkpoint.NET_FILE), "net.params cannot be loaded"),
    (lambda c: (c / checkpoint.STATE_FILE).write_text("{not json"), "state.json is not a training state"),
    (lambda c: truncate(c / checkpoint.OPTIMIZER_ARRAYS), "the optimiser state in"),
    (lambda c: (c / checkpoint.OPTIMIZER_JSON).write_text('{"layout": {"0": "missing"}}'), "array missing is missing"),
])
def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(folder: Path, channels: dict[str, Path],
                                                                 damage: object, reason: str,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    damaged = newer_copy(folder)
    damage(damaged)
    caplog.set_level(logging.INFO)
    state = resume_or_start(new_run(channels, folder))
    assert (state.epochs_done, state.step_in_epoch) == (1, 0)
    skipped = next(line for line in caplog.text.splitlines() if "event=checkpoint_skipped" in line)
    assert str(damaged) in skipped and reason in skipped, skipped
    assert "event=resume checkpoint=" + str(folder / "ckpt" / "step-0001-000000") in caplog.text


def test_an_incomplete_checkpoint_is_not_a_candidate(folder: Path) -> None:
    partial = newer_copy(folder)
    (partial / checkpoint.NET_FILE).unlink()  # an S3 sync interrupted before the weights arrived
    assert checkpoint.latest(folder / "ckpt") == folder / "ckpt" / "step-0001-000000"
    assert checkpoint.complete(folder / "ckpt") == [folder / "ckpt" / "step-0001-000000"]


def test_a_checkpoint_of_other_data_starts_fresh(folder: Path, channels: dict[str, Path],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    other = folder / "other"
    write_split(other / "train", contract.TRAIN_CHANNEL, balanced_labels(30), stored_size(IMAGE_SIZE), seed=5)
    caplog.set_level(logging.INFO)
    state = resume_or_start(new_run({**channels, "train": other / "train"}, folder))
    assert state.epochs_done == 0 and state.history == []
    assert "event=fresh_start" in caplog.text and "made on other training data" in caplog.text


@pytest.mark.slow
def test_sigint_writes_a_checkpoint_like_sigterm(tmp_path: Path, channels: dict[str, Path]) -> None:
    hps = {**FAST_HPS, "epochs": "2", "batch_size": "8", "log_interval": "5"}
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(tmp_path / "model")]
    process = run_module(argv, tmp_path / "opt_ml")
    seen = []
    for line in process.stdout:
        seen.append(line)
        if re.search(r"epoch=1/\d+ batch=5/", line):
            process.send_signal(signal.SIGINT)  # Ctrl-C in a terminal
            break
    output = "".join(seen) + process.communicate(timeout=120)[0]
    assert process.returncode == 0, output[-3000:]
    assert "event=stopped reason=SIGINT" in output and "KeyboardInterrupt" not in output
    saved = checkpoint.latest(tmp_path / "opt_ml" / "checkpoints")
    assert saved is not None and saved.name.startswith("step-0000-")  # mid-epoch 1: the batches are kept
    assert checkpoint.load_state(saved).step_in_epoch >= 5
