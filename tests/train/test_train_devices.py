"""Several devices: the multi-GPU code path run on CPU contexts (`devices=cpu:N`), with and
without AMP (bfloat16 on CPU): same results as one device, overflow steps skipped on every
device, validation with the statistics of the exported model, and aggregated updates."""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from gtsrb.common.failure import StepError, run_step
from gtsrb.common.model_io import load_model
from gtsrb.common.records import predict
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train import devices
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.environment import Environment
from gtsrb.train.export import export
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import finish_epoch, train_epoch
from gtsrb.train.step import prepare_run, train
from testkit.train import FAST_HPS, run_json_script

# The train data as packed and a net without dropout, whose random masks would differ with the
# number of devices: what remains between one and two contexts is BatchNorm's per-device batches.
SAME_DATA_NO_DROPOUT = {"model": "cifar_resnet20_v2", "fit_on_validation": "False", "min_class_share": "0"}
COMPARE_HPS = {**FAST_HPS, **SAME_DATA_NO_DROPOUT, "epochs": "2", "batch_size": "32", "lr": "0.05", "warmup_epochs": "0"}


def test_devices_values() -> None:
    assert [str(c) for c in devices.training_contexts(0, "cpu:3")] == ["cpu(0)", "cpu(1)", "cpu(2)"]
    assert devices.training_contexts(0, "auto") == [mx.cpu()] and devices.training_contexts(0, "cpu") == [mx.cpu()]
    for bad in ("gpu:2", "cpu:0", "cpu:x", ""):
        with pytest.raises(StepError, match=f"hyperparameter devices='{bad}' is invalid"):
            devices.parse_devices(bad)


def history_of(tmp_path: Path, channels: dict[str, Path], hps: dict[str, str], name: str) -> list[dict]:
    """Train in-process with these hyperparameters; the model's history."""
    model_dir = tmp_path / name / "model"
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(model_dir), "--checkpoint-dir", str(tmp_path / name / "ckpt")]
    assert run_step(lambda: train(argv), "failure") == 0
    return json.loads((model_dir / "history.json").read_text())


def assert_close(one: dict, two: dict, rel: float = 0.05) -> None:
    """Two runs' first epochs agree. Not bitwise: BatchNorm normalises each device's half batch
    with its own statistics, and the runs drift apart further in later epochs."""
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=rel), (one, two)
    assert two["train_acc"] == pytest.approx(one["train_acc"], abs=0.1), (one, two)


@pytest.mark.slow
def test_two_cpu_contexts_train_like_one(tmp_path: Path, channels: dict[str, Path]) -> None:
    one = history_of(tmp_path, channels, {**COMPARE_HPS, "devices": "cpu:1"}, "one")
    two = history_of(tmp_path, channels, {**COMPARE_HPS, "devices": "cpu:2"}, "two")
    assert_close(one[0], two[0])
    assert min(one[-1]["val_acc"], two[-1]["val_acc"]) >= 0.8  # both learned (chance is 1/6)


@pytest.mark.slow
def test_amp_on_two_cpu_contexts(tmp_path: Path, channels: dict[str, Path]) -> None:
    result = run_json_script("multi_device_amp_run.py", channels, tmp_path, timeout=600)
    assert_close(result["cpu:1"], result["cpu:2"])
    overflow = result["overflow"]
    assert overflow["all_finite"] and overflow["unchanged"], overflow  # the step was skipped on every device
    assert overflow["scale_after"] < overflow["scale_before"]
    assert result["restored_scale"] == overflow["scale_after"]  # the loss scale is checkpointed


def test_validation_uses_the_exported_batchnorm_statistics(tmp_path: Path, channels: dict[str, Path]) -> None:
    hp = Hyperparameters.from_mapping({**FAST_HPS, "devices": "cpu:2"})
    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    run = prepare_run(env, hp)
    state = TrainingState(seed=hp.seed, hyperparameters=hp.to_dict())
    values = finish_epoch(run, state, 0, train_epoch(run, state, epoch=0), 0.0)
    labels, validated = predict(run.net, run.val_files, run.prep, hp.batch_size, run.ctx[0])
    export(tmp_path / "ckpt" / state.name / "net.params", tmp_path / "model", hp.to_dict(), state.history, run.class_names)
    _, exported = predict(load_model(tmp_path / "model", mx.cpu()).net, run.val_files, run.prep, hp.batch_size, mx.cpu())
    np.testing.assert_allclose(validated, exported, rtol=1e-4, atol=1e-5)
    assert values["val_acc"] == pytest.approx(float((exported.argmax(axis=1) == labels).mean()))


def test_sgd_updates_are_aggregated_and_not_on_the_kvstore(tmp_path: Path, channels: dict[str, Path]) -> None:
    hp = Hyperparameters.from_mapping({**FAST_HPS, "optimizer": "sgd", "devices": "cpu:2"})
    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    run = prepare_run(env, hp)
    train_epoch(run, TrainingState(), epoch=0)
    assert run.trainer._update_on_kvstore is False  # AMP's overflow check must run before any update
    assert run.trainer._optimizer.aggregate_num >= 60 and run.trainer._updaters[0].aggregate_updates
