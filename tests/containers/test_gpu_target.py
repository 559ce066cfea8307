"""The GPU run book's summary (containers/gpu_target.py) reads the train step's real epoch lines and
the evaluation report (the GPU run itself needs a GPU: docs/gpu-runbook.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from gtsrb.common import contract
from gtsrb.train.epoch_log import epoch_line
from testkit.containers import CONTAINERS


def load_gpu_target():
    spec = importlib.util.spec_from_file_location("gpu_target", CONTAINERS / "gpu_target.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reads_epoch_lines_and_accuracy(tmp_path: Path) -> None:
    gpu_target = load_gpu_target()
    lines = [epoch_line({"epoch": e, "train_loss": 0.5, "train_acc": 0.9, "val_acc": 0.99, "lr": 0.01,
                         "img_per_s": rate, "seconds": seconds}) for e, rate, seconds in ((1, 2000.0, 20.0), (2, 2400.0, 16.0))]
    (tmp_path / "job.log").write_text("event=start model=resnet50_v1d\n" + "\n".join(lines) + "\n")
    report = {contract.QUALITY_METRICS_KEY: {"accuracy": {"value": 0.9981, "standard_deviation": "NaN"}}}
    (tmp_path / "evaluation.json").write_text(json.dumps(report))
    numbers = gpu_target.summary(tmp_path / "job.log", tmp_path / "evaluation.json", job_seconds=420.0)
    assert numbers == {"epochs": 2, "img_per_s": 2200.0, "epoch_seconds": 18.0, "job_seconds": 420.0, "test_accuracy": 0.9981}
    assert gpu_target.verdict(numbers) == []
    assert gpu_target.verdict({**numbers, "test_accuracy": 0.99, "job_seconds": 700.0}) == [
        "test accuracy 0.9900 < 0.997", "job time 700 s > 600 s"]
