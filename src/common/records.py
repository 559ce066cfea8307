"""Reading packed splits: record counts, stored image size, and exact-once prediction.

Validation in the train step and the evaluate step both predict through `predict`, so the
accuracy training logs on a split is the accuracy evaluation reports on it.
"""

from __future__ import annotations

import os

import mxnet as mx
import numpy as np

from gtsrb.common.contract import RecordFiles
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.common.tta import probabilities


def record_count(files: RecordFiles) -> int:
    """Number of records in a split, from its .idx (one line per record)."""
    if not files.idx.is_file():
        raise StepError(f"{files.idx} is missing: a .rec needs its .idx; re-run the prepare step.")
    with open(files.idx, "rb") as f:
        return sum(1 for line in f if line.strip())


def stored_image_side(files: RecordFiles) -> int:
    """The smaller side of the first packed image (prepare packs squares of one size)."""
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    try:
        header, image = mx.recordio.unpack_img(reader.read_idx(reader.keys[0]))
    except Exception as err:
        raise StepError(f"{files.rec}: cannot decode its first record ({err}).") from err
    finally:
        reader.close()
    return int(min(image.shape[:2]))


def decode_threads() -> int:
    """Decode threads for ImageRecordIter: every CPU (it only decodes when the net runs elsewhere)."""
    return max(1, len(os.sched_getaffinity(0)))


def eval_iter(files: RecordFiles, prep: Preprocessing, batch_size: int) -> mx.io.ImageRecordIter:
    """Deterministic iterator over a split: file order, centre crop, normalised, no augmentation."""
    check_split(files, prep)
    return mx.io.ImageRecordIter(
        path_imgrec=str(files.rec),
        path_imgidx=str(files.idx),
        data_shape=prep.data_shape,
        batch_size=batch_size,
        shuffle=False,
        rand_crop=False,
        rand_mirror=False,
        round_batch=False,
        preprocess_threads=decode_threads(),
        **prep.normalize_kwargs(),
    )


def check_split(files: RecordFiles, prep: Preprocessing) -> int:
    """Fail clearly on a split that cannot feed a network of this input size; return its count."""
    if not files.rec.is_file() or files.rec.stat().st_size == 0:
        raise StepError(f"{files.rec} is missing or empty; re-run the prepare step.")
    count = record_count(files)
    if count == 0:
        raise StepError(f"{files.idx} lists no records; re-run the prepare step.")
    side = stored_image_side(files)
    if side < prep.image_size:
        raise StepError(
            f"{files.rec} holds {side}px images, smaller than the {prep.image_size}px network "
            f"input: prepare with --image-size {prep.image_size} or train with image_size <= {side}."
        )
    return count


def predict(
    net: mx.gluon.HybridBlock, files: RecordFiles, prep: Preprocessing, batch_size: int, ctx: mx.Context
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of every record of a split, each exactly once, in file order.

    Scores with the model's own test-time augmentation (`prep.tta`, gtsrb.common.tta).

    ImageRecordIter's last batch is padded with stale rows and its `pad` field is unreliable, so
    rows are counted against the .idx instead; a short read is an error, never a silent result.
    """
    expected = record_count(files)
    labels, probs = [], []
    remaining = expected
    for batch in eval_iter(files, prep, batch_size):
        take = min(remaining, batch.data[0].shape[0])
        data = batch.data[0][:take].as_in_context(ctx)
        probs.append(probabilities(net, data, prep.tta).asnumpy())
        labels.append(batch.label[0][:take].asnumpy().astype(np.int64))
        remaining -= take
        if remaining == 0:
            break
    if remaining:
        raise StepError(f"{files.rec}: read {expected - remaining} of {expected} records; the file is truncated.")
    return np.concatenate(labels), np.concatenate(probs)
