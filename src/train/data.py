"""The training input: augmented, shuffled batches from the `train` channel's RecordIO.

Augmentation is sign-safe: random crop out of the stored square (prepare packs 1/8 larger
than the input), small rotation, shear and scale, colour jitter, and never a mirror (mirrored
signs are other classes). Normalisation and input size come from the shared Preprocessing.
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx

from gtsrb.common import contract
from gtsrb.common.classes import read_class_names
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.common.records import check_records, check_split, record_iter
from gtsrb.train.hyperparameters import Hyperparameters, epoch_seed


def channel_split(folder: Path | None, channel: str) -> contract.RecordFiles:
    """The packed split a data channel's folder holds (`train/train.rec`, ...), or a clear error."""
    if folder is None:
        raise StepError(f"no `{channel}` channel: give it in the training job's inputs (or --{channel} DIR by hand).")
    if not folder.is_dir():
        raise StepError(f"the `{channel}` channel {folder} is not a folder; give the prepare step's `{channel}` output.")
    files = contract.record_files(folder, contract.CHANNEL_SPLITS[channel])
    if not any(folder.iterdir()):
        raise StepError(f"the `{channel}` channel {folder} is empty; give the prepare step's `{channel}` output.")
    if not files.rec.is_file():
        raise StepError(f"the `{channel}` channel {folder} holds no {files.rec.name}; give the prepare step's `{channel}` output.")
    return files


def validate_split(files: contract.RecordFiles, prep: Preprocessing, num_classes: int) -> int:
    """Every check a split must pass before training; returns its record count."""
    count = check_split(files, prep)  # .idx/.rec pairing, empty split, packed for another size
    check_records(files, num_classes)  # every label a class, every image decodable: no MXNetError mid-epoch
    return count


def split_class_names(train: contract.RecordFiles, validation: contract.RecordFiles) -> list[str]:
    """The class names prepare wrote beside both splits (classes.json); they must agree."""
    names = read_class_names(train.rec.parent, "give the prepare step's outputs as the channels")
    other = read_class_names(validation.rec.parent, "give the prepare step's outputs as the channels")
    if other != names:
        raise StepError(
            f"{train.rec.parent} and {validation.rec.parent} list other classes in their classes.json "
            f"({len(names)} vs {len(other)}); give the train and validation outputs of one prepare run."
        )
    return names


def check_batch_size(count: int, batch_size: int, files: contract.RecordFiles) -> None:
    """A batch larger than the split would never fill: say so instead of training on nothing."""
    if batch_size > count:
        raise StepError(
            f"batch_size={batch_size} is larger than the {count} records of {files.rec}; "
            f"use batch_size <= {count} or more training data."
        )


def train_iter(files: contract.RecordFiles, prep: Preprocessing, hp: Hyperparameters, batch_size: int, epoch: int,
               seed_offset: int = 0) -> mx.io.ImageRecordIter:
    """Augmented batches of one epoch, shuffled and augmented with seeds of (hp.seed + seed_offset, epoch) for
    exact resume (seed_offset: the worker's, so that workers draw different augmentations)."""
    jitter = hp.color_jitter
    return record_iter(
        files,
        prep,
        batch_size,
        shuffle=True,
        seed=epoch_seed(hp.seed + seed_offset, epoch),  # the shuffle
        seed_aug=epoch_seed(hp.seed + seed_offset, epoch),  # the augmentation: `seed` does not reach it
        rand_crop=True,
        max_rotate_angle=int(hp.max_rotate_deg),
        max_shear_ratio=hp.max_shear,
        min_random_scale=hp.min_scale,
        max_random_scale=hp.max_scale,
        brightness=jitter,
        contrast=jitter,
        saturation=jitter,
        fill_value=127,
        inter_method=1,  # bilinear
        prefetch_buffer=4,
    )
