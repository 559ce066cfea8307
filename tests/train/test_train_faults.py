"""Values and data that used to end in a library traceback (or train on nonsense) now fail at
once with one sentence naming the key or the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_bad_input import assert_fails, run_train

from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import stored_size
from gtsrb.train.hyperparameters import Hyperparameters
from testkit.prepare import corrupt_record
from testkit.train import FAST_HPS, IMAGE_SIZE, balanced_labels, write_split


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_shear", "2"), ("max_shear", "nan"), ("max_scale", "inf"), ("momentum", "nan"), ("momentum", "1.5"),
        ("seed", "-1"), ("max_rotate_deg", "nan"), ("max_rotate_deg", "-5"), ("lr", "inf"), ("head_lr_mult", "inf"),
        ("warmup_epochs", "nan"), ("color_jitter", "nan"),
    ],
)
def test_non_finite_or_out_of_range_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(StepError) as err:
        Hyperparameters.from_mapping({"preset": "cpu", key: value})
    assert str(err.value).startswith(f"hyperparameter {key}=")
    assert "invalid" in str(err.value)


def test_every_default_and_preset_is_valid() -> None:
    Hyperparameters().validate()
    Hyperparameters.for_preset("cpu").validate()


def test_batch_larger_than_the_split(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    small = tmp_path / "small" / "train"
    write_split(small, "train", balanced_labels(2), stored_size(IMAGE_SIZE))  # 12 records
    result = run_train(base_dir, {"train": small, "validation": channels["validation"]}, {**FAST_HPS, "batch_size": "16"})
    assert_fails(result, "batch_size=16 is larger than the 12 records of", "train.rec")


def test_an_undecodable_image_inside_the_rec(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    """MXNet used to stop mid-epoch with an OpenCV assertion (an 'Unexpected error' traceback)."""
    broken = tmp_path / "broken" / "train"
    corrupt_record(write_split(broken, "train", balanced_labels(10), stored_size(IMAGE_SIZE)), 37)
    result = run_train(base_dir, {"train": broken, "validation": channels["validation"]}, FAST_HPS)
    assert_fails(result, "train.rec record 37 is not a decodable image")


def test_a_truncated_rec(base_dir: Path, channels: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "train"
    files = write_split(broken, "train", balanced_labels(10), stored_size(IMAGE_SIZE))
    data = files.rec.read_bytes()
    files.rec.write_bytes(data[: len(data) - 700])  # a copy cut short
    result = run_train(base_dir, {"train": broken, "validation": channels["validation"]}, FAST_HPS)
    assert_fails(result, "train.idx", "stale or truncated")
