"""Augmentation randomness is seeded from (seed, epoch): epochs differ, a rerun repeats them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gtsrb.common import contract
from gtsrb.common.preprocessing import Preprocessing, stored_size
from gtsrb.train.data import train_iter
from gtsrb.train.hyperparameters import Hyperparameters
from testkit.train import IMAGE_SIZE, write_split


def augmented(files: contract.RecordFiles, hp: Hyperparameters, epoch: int) -> np.ndarray:
    """The augmented image of a one-record split (so no shuffle can hide the augmentation)."""
    return next(iter(train_iter(files, Preprocessing(IMAGE_SIZE), hp, 1, epoch))).data[0].asnumpy()


def test_epochs_are_augmented_differently_and_reruns_alike(tmp_path: Path) -> None:
    files = write_split(tmp_path, contract.TRAIN_CHANNEL, [3], stored_size(IMAGE_SIZE))
    hp = Hyperparameters.for_preset("cpu")
    first = augmented(files, hp, epoch=0)
    assert np.abs(augmented(files, hp, epoch=1) - first).max() > 0.1  # another epoch: another crop, rotation, jitter
    np.testing.assert_array_equal(augmented(files, hp, epoch=0), first)  # a rerun (or a resume) repeats it
    other_seed = Hyperparameters.from_mapping({"preset": "cpu", "seed": "7"})
    assert np.abs(augmented(files, other_seed, epoch=0) - first).max() > 0.1
