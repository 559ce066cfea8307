"""SIGTERM reaches the script: `docker stop` mid-epoch of `docker run IMAGE train` (the real toolkit
under tini -g and the entry shim) exits 0 with a mid-epoch checkpoint, and a second run resumes
from it and finishes. This is what a spot interruption, StopTrainingJob or the max runtime does."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from gtsrb.common.preprocessing import stored_size
from gtsrb.train import checkpoint
from testkit.containers import load_script, run

pytestmark = [pytest.mark.containers, pytest.mark.slow]
train_local = load_script("train_local")
# One short epoch of many small batches, logging each: the stop lands mid-epoch.
HPS = {"preset": "cpu", "image_size": "32", "epochs": "1", "warmup_epochs": "0", "batch_size": "16", "log_interval": "1"}
STOP_AFTER_BATCH = 20


def toy_channels(out: Path) -> dict[str, Path]:
    """train/validation RecordIO channels from the train tests' toy-data writer (~220 batches)."""
    from testkit import train as data

    side = stored_size(data.IMAGE_SIZE)  # HPS' input size, as prepare stores it
    data.write_split(out / "train", "train", data.balanced_labels(600), side)
    data.write_split(out / "validation", "validation", data.balanced_labels(10), side, seed=1)
    return {"train": out / "train", "validation": out / "validation"}


def start_job(docker: str, image: str, root: Path, channels: dict[str, Path], name: str) -> subprocess.Popen:
    """`docker run --name NAME ... IMAGE train` as train_local lays it out, output piped."""
    train_local.write_config(root, channels, HPS)
    cmd = train_local.docker_command(docker, image, root, channels, "none")
    cmd[2:2] = ["--name", name]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_mid_epoch(docker: str, job: subprocess.Popen, name: str) -> list[str]:
    """Read the job's log until batch STOP_AFTER_BATCH, `docker stop` it, return all its lines."""
    lines = []
    for line in job.stdout:
        lines.append(line)
        if f"batch={STOP_AFTER_BATCH}/" in line:
            stopped = run([docker, "stop", "--time", "60", name], timeout=120)
            assert stopped.returncode == 0, stopped.stderr
    job.wait(timeout=120)
    return lines


def test_docker_stop_mid_epoch_checkpoints_exits_0_and_a_second_run_resumes(docker: str, image: str,
                                                                               tmp_path: Path) -> None:
    channels, root = toy_channels(tmp_path / "data"), tmp_path / "ml"
    name = f"gtsrb-sigterm-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    job = start_job(docker, image, root, channels, name)
    log = "".join(stop_mid_epoch(docker, job, name))
    assert f"batch={STOP_AFTER_BATCH}/" in log, log[-3000:]
    assert job.returncode == 0, log[-3000:]  # not 143: the toolkit waited, the script exited cleanly
    assert "event=interrupted" in log and "entrypoint: signal 15" in log, log[-3000:]
    saved = checkpoint.latest(root / "checkpoints")
    assert saved is not None, log[-3000:]
    state = checkpoint.load_state(saved)
    assert state.epochs_done == 0 and STOP_AFTER_BATCH <= state.step_in_epoch < 200  # mid-epoch
    assert time.monotonic() - started < 300

    second = start_job(docker, image, root, channels, f"{name}-2")
    out, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out[-3000:]
    assert f"event=resume checkpoint=/opt/ml/checkpoints/{saved.name}" in out and f"batch={state.step_in_epoch}" in out
    assert f"batch={state.step_in_epoch}/" not in out  # the batches already trained are not trained again
    finished = checkpoint.load_state(checkpoint.latest(root / "checkpoints"))
    assert finished.epochs_done == 1 and finished.step_in_epoch == 0
    assert any((root / "model").iterdir())
