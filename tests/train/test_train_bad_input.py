"""Every bad input of the train step fails at once with one clear sentence and a failure file."""

from __future__ import annotations

import shutil
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import cuda
from gtsrb.common.failure import run_step
from gtsrb.common.preprocessing import stored_size
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train import devices
from gtsrb.train.step import launch_or_train, train
from testkit.train import FAST_HPS, IMAGE_SIZE, balanced_labels, run_module, write_split


def run_train(base: Path, channels: dict[str, Path | None], hps: dict[str, str], extra: list[str] = ()) -> tuple[int, str]:
    """Run the step in-process as the toolkit would; return (exit code, failure file text)."""
    argv = [*hyperparameters_to_args(hps), "--model-dir", str(base / "model"), *extra]
    for name, folder in channels.items():
        if folder is not None:
            argv += [f"--{name}", str(folder)]
    code = run_step(lambda: train(argv), "failure")
    failure = base / "output" / "failure"
    return code, failure.read_text() if failure.is_file() else ""


def assert_fails(result: tuple[int, str], *phrases: str) -> None:
    code, text = result
    assert code == 1
    sentence = text.splitlines()[0]
    for phrase in phrases:
        assert phrase in sentence, sentence


def copy_channels(channels: dict[str, Path], tmp_path: Path) -> dict[str, Path]:
    """A writable copy of the channels, to break."""
    return {name: Path(shutil.copytree(folder, tmp_path / "copy" / name)) for name, folder in channels.items()}


def test_missing_channel(base_dir: Path, channels: dict[str, Path]) -> None:
    result = run_train(base_dir, {"train": channels["train"]}, FAST_HPS)
    assert_fails(result, "no `validation` channel")
    assert not list((base_dir / "model").iterdir())  # no model is written on failure


def test_empty_channel(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_fails(run_train(base_dir, {"train": empty, "validation": channels["validation"]}, FAST_HPS), str(empty), "is empty")


def test_rec_without_idx(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    broken = copy_channels(channels, tmp_path)
    (broken["train"] / "train.idx").unlink()
    assert_fails(run_train(base_dir, broken, FAST_HPS), "train.idx is missing")


def test_label_outside_the_classes(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad" / "train"
    write_split(bad, "train", [*balanced_labels(2), 43], stored_size(IMAGE_SIZE))
    result = run_train(base_dir, {"train": bad, "validation": channels["validation"]}, FAST_HPS)
    assert_fails(result, "train.rec record 12 has label 43", "not a class id 0..42")


def test_images_smaller_than_the_crop(base_dir: Path, channels: dict[str, Path]) -> None:
    result = run_train(base_dir, channels, {**FAST_HPS, "image_size": "48"})
    assert_fails(result, "holds 36px images, but image_size=48 needs 54px ones")


def test_nan_loss_names_the_epoch(base_dir: Path, channels: dict[str, Path]) -> None:
    result = run_train(base_dir, channels, {**FAST_HPS, "lr": "1e30", "warmup_epochs": "0"})
    assert_fails(result, "the training loss became nan in epoch 1")
    assert not list((base_dir / "model").iterdir())  # no model is written on failure


@pytest.mark.parametrize(
    ("hps", "phrase"),
    [
        ({"model": "vgg16"}, "model='vgg16' is not supported"),
        ({"model": "resnet19_v1b"}, "model='resnet19_v1b' is not in the gluoncv model zoo"),
        ({"learning_rate": "0.1"}, "unknown hyperparameter 'learning_rate'"),
        ({"batch_size": "many"}, "hyperparameter batch_size='many' is not a valid int"),
        ({"amp": "yes"}, "hyperparameter amp='yes' is not a valid bool"),
        ({"epochs": "0"}, "hyperparameter epochs=0 is invalid"),
        ({"preset": "tpu"}, "preset='tpu' is unknown"),
        ({"equalize": "histogram"}, "hyperparameter equalize='histogram' is invalid: it must be one of none, clahe"),
    ],
)
def test_bad_hyperparameters(base_dir: Path, channels: dict[str, Path], hps: dict, phrase: str) -> None:
    assert_fails(run_train(base_dir, channels, {**FAST_HPS, **hps}), phrase)


def test_imagenet_weights_absent_fail_without_download(base_dir: Path, channels: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "mxnet-home"))
    result = run_train(base_dir, channels, {**FAST_HPS, "model": "resnet18_v1b", "pretrained": "imagenet"})
    assert_fails(result, "ImageNet weights for resnet18_v1b are not in the image", "resnet18_v1b-2d9d980c.params is missing")


def test_several_hosts_check_the_hyperparameters_before_starting_any_role(
        base_dir: Path, channels: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-1")
    argv = [*hyperparameters_to_args({**FAST_HPS, "peer_timeout": "0"}), "--model-dir", str(base_dir / "model")]
    assert run_step(lambda: launch_or_train(argv), "failure") == 1
    assert "hyperparameter peer_timeout=0.0 is invalid" in (base_dir / "output" / "failure").read_text()
    assert "event=role" not in caplog.text  # nothing was started


def test_unsupported_gpu(base_dir: Path, channels: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU exists here: pretend a current driver and MXNet see an H100 (the driver queries are the only fakes).
    monkeypatch.setattr(cuda, "driver_cuda_version", lambda: 12020)
    monkeypatch.setattr(mx.context, "num_gpus", lambda: 1)
    monkeypatch.setattr(devices, "gpu_capabilities", lambda count: [("NVIDIA H100 80GB HBM3", (9, 0))] * count)
    result = run_train(base_dir, channels, FAST_HPS, ["--num-gpus", "1"])
    assert_fails(result, "GPU NVIDIA H100 80GB HBM3 has compute capability 9.0", "ml.g5 (A10G)", "not ml.p5")


def test_pretrained_channel_of_another_architecture(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pretrained"
    folder.mkdir()
    net = mx.gluon.nn.Dense(3, in_units=2)
    net.initialize()
    net.save_parameters(str(folder / "other.params"))
    result = run_train(base_dir, channels, FAST_HPS, ["--pretrained-dir", str(folder)])
    assert_fails(result, "other.params does not fit this model")


def test_unwritable_checkpoint_dir_fails_before_training(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_train(base_dir, channels, FAST_HPS, ["--checkpoint-dir", str(blocker / "checkpoints")])
    assert_fails(result, f"cannot write to {blocker / 'checkpoints'}", "--checkpoint-dir")
    assert not list((base_dir / "model").glob("*.params"))


def test_checkpoints_of_other_hyperparameters_are_refused(base_dir: Path, channels: dict[str, Path]) -> None:
    assert run_train(base_dir, channels, {**FAST_HPS, "epochs": "1"}) == (0, "")
    result = run_train(base_dir, channels, {**FAST_HPS, "epochs": "1", "lr": "0.02"})
    assert_fails(result, "was written with other hyperparameters (lr)", "empty checkpoint folder")


def test_images_packed_for_another_size(base_dir: Path, channels: dict[str, Path]) -> None:
    # 36 px records are packed for a 32 px input: a 24 px crop would cut parts of every sign.
    result = run_train(base_dir, channels, {**FAST_HPS, "image_size": "24"})
    assert_fails(result, "holds 36px images, but image_size=24 needs 27px ones", "use image_size=32")


def test_stale_idx_fails_before_mxnet_reads_it(tmp_path: Path, channels: dict[str, Path]) -> None:
    """A .idx of another .rec made MXNet segfault (exit 255, no failure file)."""
    broken = copy_channels(channels, tmp_path)
    other = write_split(tmp_path / "other", "train", balanced_labels(40), stored_size(IMAGE_SIZE), seed=9)
    shutil.copy(other.idx, broken["train"] / "train.idx")
    base = tmp_path / "opt_ml"
    argv = [*hyperparameters_to_args(FAST_HPS), "--model-dir", str(base / "model"), "--train", str(broken["train"]),
            "--validation", str(broken["validation"])]
    proc = run_module(argv, base)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output
    assert "stale or truncated" in (base / "output" / "failure").read_text().splitlines()[0]
