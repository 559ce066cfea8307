"""Checkpoints: SIGTERM stops cleanly with a checkpoint, a hard kill loses no completed epoch,
and the resumed run finishes the remaining epochs, each exactly once.

(Bitwise equality with an uninterrupted run is not asserted: MXNet's threaded engine on CPU is
not bitwise deterministic even without interruption; with MXNET_ENGINE_TYPE=NaiveEngine it is.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from testkit.train import FAST_HPS, run_module

# 30 batches an epoch, a line every 5
HPS = {**FAST_HPS, "epochs": "4", "batch_size": "8", "log_interval": "5", "fit_on_validation": "False"}


def args(channels: dict[str, Path], model_dir: Path) -> list[str]:
    return [*hyperparameters_to_args(HPS), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(model_dir)]


def run_until(process: subprocess.Popen, marker: str, sig: int) -> str:
    """Read the output until a line contains `marker`, send `sig`, return all output."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            process.send_signal(sig)
            break
    rest, _ = process.communicate(timeout=120)
    return "".join(seen) + rest


def epoch_values(output: str, epoch: int) -> dict[str, float]:
    """The key=value fields of one epoch line of the output."""
    line = next(row for row in output.splitlines() if re.match(rf"epoch={epoch}/\d+ train_loss=", row))
    return {k: float(v) for k, v in (item.split("=") for item in line.split()[1:]) if re.fullmatch(r"[-+.eE0-9]+", v)}


def finish(base: Path, argv: list[str]) -> str:
    """Run to the end; return the output."""
    process = run_module(argv, base)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_sigterm_then_kill_then_resume_finishes_every_epoch_once(tmp_path: Path, channels: dict[str, Path]) -> None:
    base, model_dir = tmp_path / "opt_ml", tmp_path / "model"

    # 1. SIGTERM during epoch 2: a checkpoint, exit 0, no failure file and no model yet.
    first = run_module(args(channels, model_dir), base)
    output = run_until(first, f"epoch=2/{HPS['epochs']} batch=5/30", signal.SIGTERM)
    first_epoch = epoch_values(output, 1)
    assert first.returncode == 0, output[-3000:]
    assert "event=stopped reason=SIGTERM" in output
    assert "event=interrupted epoch=2 batch=" in output  # a mid-epoch checkpoint (batch position kept)
    assert not (base / "output" / "failure").exists() and not list(model_dir.iterdir())
    assert list((base / "checkpoints").glob("step-*/state.json"))

    # 2. A hard kill (no chance to write anything) after the next completed epoch.
    second = run_module(args(channels, model_dir), base)
    output = run_until(second, "event=checkpoint", signal.SIGKILL)
    assert re.search(r"event=resume .*epochs_done=1 batch=[1-9]", output)  # continues inside epoch 2
    assert second.returncode == -signal.SIGKILL

    # 3. The resumed run finishes all epochs, each exactly once.
    output = finish(base, args(channels, model_dir))
    assert "event=resume" in output
    history = json.loads((model_dir / contract.HISTORY_FILE).read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[0]["train_loss"] == pytest.approx(first_epoch["train_loss"], rel=1e-5)  # kept, not redone
    assert max(h["val_acc"] for h in history) >= 0.8  # it still learned (chance is 1/6)
    assert len(list((base / "checkpoints").glob("step-*"))) <= 2  # the newest and the best
