"""Reading packed splits: record counts, stored image size, and exact-once prediction.

Validation in the train step and the evaluate step both predict through `predict`, so the
accuracy training logs on a split is the accuracy evaluation reports on it. Every iterator comes
from `record_iter`, which reads the split as the model's input contract says: with its contrast
equalisation (`equalized`), the same function serving applies to an image file.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np

from gtsrb.common.contract import MANIFEST_FILE, MANIFEST_OUTPUT, RecordFiles, record_files
from gtsrb.common.failure import StepError
from gtsrb.common.image_input import equalize
from gtsrb.common.inference import class_probabilities
from gtsrb.common.preprocessing import Preprocessing, stored_size

RECORD_MAGIC = 0xCED7230A  # dmlc-core recordio.h: every record part starts with it
_PART_HEADER = struct.Struct("<II")  # magic, cflag << 29 | length
_LENGTH_MASK = (1 << 29) - 1


def record_count(files: RecordFiles) -> int:
    """Number of records in a split, from its .idx (one line per record)."""
    return len(read_offsets(files))


def read_offsets(files: RecordFiles) -> list[int]:
    """The record offsets the .idx lists (`key<TAB>offset` lines), in file order."""
    if not files.idx.is_file():
        raise StepError(f"{files.idx} is missing: a .rec needs its .idx; re-run the prepare step.")
    offsets = []
    with open(files.idx, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                offsets.append(int(line.split(b"\t")[1]))
            except (IndexError, ValueError):
                raise StepError(f"{files.idx}, line {number}: not a `key<TAB>offset` line; re-run the prepare step.") from None
    return sorted(offsets)


def record_end(rec, offset: int) -> int | None:
    """Where the record starting at `offset` ends (after padding), or None if no record starts there."""
    position = offset
    while True:
        rec.seek(position)
        head = rec.read(_PART_HEADER.size)
        if len(head) < _PART_HEADER.size:
            return None
        magic, lrec = _PART_HEADER.unpack(head)
        if magic != RECORD_MAGIC:
            return None
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        position += _PART_HEADER.size + length + (-length % 4)
        if cflag in (0, 3):  # a whole record, or the last part of a split one
            return position


def check_pairing(files: RecordFiles) -> int:
    """Fail unless the .idx indexes every record of the .rec exactly once; return the count.

    Pure Python, before MXNet opens the files: a stale .idx makes MXNet read garbage offsets
    (seen: a segfault), and a truncated one silently hides records."""
    offsets, size = read_offsets(files), files.rec.stat().st_size
    hint = "they do not belong together (a stale or truncated .idx?); re-run the prepare step."
    with open(files.rec, "rb") as rec:
        for i, offset in enumerate(offsets):
            end = record_end(rec, offset)
            expected = offsets[i + 1] if i + 1 < len(offsets) else size
            if end is None or end > size:
                raise StepError(f"{files.idx} points at byte {offset} of {files.rec}, where no record starts: {hint}")
            if end != expected:
                raise StepError(f"{files.rec} holds data from byte {end} that {files.idx} does not index: {hint}")
    check_manifest_count(files, len(offsets))
    return len(offsets)


def check_manifest_count(files: RecordFiles, count: int) -> None:
    """Compare with prepare's manifest when it sits beside the split (`<out>/manifest/`)."""
    manifest = files.rec.parent.parent / MANIFEST_OUTPUT / MANIFEST_FILE
    split = files.rec.stem
    try:
        expected = json.loads(manifest.read_text())["counts"][split]["total"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no manifest here (SageMaker hands over only the split): the pairing check stands
    if expected != count:
        raise StepError(f"{files.rec} holds {count} records but {manifest} says {expected}; re-run the prepare step.")


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
    """Decode threads asked of ImageRecordIter: every CPU (it only decodes when the net runs elsewhere).
    MXNet 1.9.1 uses at most half the CPUs it sees (omp_get_num_procs() / 2), whatever this says:
    2 threads on ml.g5.xlarge's 4 vCPUs; docs/gpu-runbook.md measures the margin over the GPU."""
    return max(1, len(os.sched_getaffinity(0)))


# Equalised copies made by this process: (split, mode, size, mtime) -> the copy's files.
_EQUALIZED: dict[tuple[str, str, int, int], RecordFiles] = {}


def equalized(files: RecordFiles, mode: str) -> RecordFiles:
    """The split with every image passed through image_input.equalize(mode); "none" is the split itself.

    Written once per process into a temporary folder (PNG, so no second lossy step; ImageRecordIter
    decodes it like the packed JPEGs), removed at exit; labels and keys are the split's.
    """
    if mode == "none":
        return files
    stat = files.rec.stat()
    key = (str(files.rec.resolve()), mode, stat.st_size, stat.st_mtime_ns)
    if key not in _EQUALIZED:
        folder = Path(tempfile.mkdtemp(prefix="gtsrb-equalized-"))
        atexit.register(shutil.rmtree, folder, True)
        out = record_files(folder, files.rec.stem)
        reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
        writer = mx.recordio.MXIndexedRecordIO(str(out.idx), str(out.rec), "w")
        try:
            for number in reader.keys:
                header, image = mx.recordio.unpack_img(reader.read_idx(number), cv2.IMREAD_COLOR)
                if image is None:
                    raise StepError(f"{files.rec} record {number}: its image cannot be decoded; re-run the prepare step.")
                writer.write_idx(number, mx.recordio.pack_img(header, equalize(image, mode), img_fmt=".png"))
        except OSError as err:
            raise StepError(f"cannot write the {mode}-equalised copy of {files.rec} into {folder} ({err.strerror or err}).") from err
        finally:
            reader.close()
            writer.close()
        _EQUALIZED[key] = out
    return _EQUALIZED[key]


def record_iter(files: RecordFiles, prep: Preprocessing, batch_size: int, **options: object) -> mx.io.ImageRecordIter:
    """ImageRecordIter over a split with what every reader shares (paths, input, equalisation, normalisation,
    threads) + `options`."""
    files = equalized(files, prep.equalize)
    return mx.io.ImageRecordIter(
        path_imgrec=str(files.rec),
        path_imgidx=str(files.idx),
        data_shape=prep.data_shape,
        batch_size=batch_size,
        rand_mirror=False,  # never: 19/20, 33/34, 36/37, 38/39 are mirror images of each other
        preprocess_threads=decode_threads(),
        **prep.normalize_kwargs(),
        **options,
    )


def eval_iter(files: RecordFiles, prep: Preprocessing, batch_size: int) -> mx.io.ImageRecordIter:
    """Deterministic iterator over a split: file order, centre crop, normalised, no augmentation."""
    check_split(files, prep)
    return record_iter(files, prep, batch_size, shuffle=False, rand_crop=False, round_batch=False)


def check_split(files: RecordFiles, prep: Preprocessing) -> int:
    """Fail clearly on a split that cannot feed a network of this input exactly; return its count."""
    if not files.rec.is_file() or files.rec.stat().st_size == 0:
        raise StepError(f"{files.rec} is missing or empty; re-run the prepare step.")
    count = check_pairing(files)
    if count == 0:
        raise StepError(f"{files.idx} lists no records; re-run the prepare step.")
    check_packed_size(files, prep)
    return count


def check_packed_size(files: RecordFiles, prep: Preprocessing) -> None:
    """Fail if the split was packed for another input size: a larger one would be centre-cropped
    (another framing than in training), a smaller one cannot be cropped at all."""
    side = stored_image_side(files)
    if side != stored_size(prep.image_size):
        packed_for = next((s for s in range(1, side + 1) if stored_size(s) == side), None)
        hint = f"use image_size={packed_for} or " if packed_for else ""
        raise StepError(
            f"{files.rec} holds {side}px images, but image_size={prep.image_size} needs "
            f"{stored_size(prep.image_size)}px ones: {hint}prepare with --image-size {prep.image_size}."
        )


def check_records(files: RecordFiles, num_classes: int) -> None:
    """Read every record once: its label must be a class id and its image must decode.

    ImageRecordIter stops with an MXNetError (an OpenCV assertion) at a record it cannot decode,
    mid-epoch; ~2 s for GTSRB's 35k small JPEGs buys a sentence naming the record instead."""
    reader = mx.recordio.MXRecordIO(str(files.rec), "r")
    try:
        position = 0
        while (record := reader.read()) is not None:
            header, payload = mx.recordio.unpack(record)
            check_labels(files, np.asarray(header.label, np.float64).ravel()[:1], num_classes, first=position)
            if cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR) is None:
                raise StepError(
                    f"{files.rec} record {position} is not a decodable image (corrupt data inside the .rec); "
                    "re-run the prepare step."
                )
            position += 1
    finally:
        reader.close()


def check_labels(files: RecordFiles, labels: np.ndarray, num_classes: int | None, first: int = 0) -> np.ndarray:
    """Labels as class ids, or a clear error for one that is not a whole number in 0..num_classes-1
    (None: any class id; the caller checked the range with check_records)."""
    upper = np.inf if num_classes is None else num_classes
    bad = np.flatnonzero((labels != np.round(labels)) | (labels < 0) | (labels >= upper))
    if bad.size:
        raise StepError(
            f"{files.rec} record {first + int(bad[0])} has label {float(labels[bad[0]]):g}, not a class id"
            f"{'' if num_classes is None else f' 0..{num_classes - 1} of its {num_classes} classes'}; re-run the prepare step."
        )
    return labels.astype(np.int64)


def predict(
    net: mx.gluon.HybridBlock, files: RecordFiles, prep: Preprocessing, batch_size: int, ctx: mx.Context
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of every record of a split, each exactly once, in file order.

    Scores with the model's own test-time augmentation (`prep.tta`, gtsrb.common.inference).

    ImageRecordIter's last batch is padded with stale rows and its `pad` field is unreliable, so
    rows are counted against the .idx instead; a short read is an error, never a silent result.
    """
    expected = record_count(files)
    labels, probs = [], []
    remaining = expected
    for batch in eval_iter(files, prep, batch_size):
        take = min(remaining, batch.data[0].shape[0])
        data = batch.data[0][:take].as_in_context(ctx)
        probs.append(class_probabilities(net, data, prep.tta))
        labels.append(batch.label[0][:take].asnumpy())
        remaining -= take
        if remaining == 0:
            break
    if remaining:
        raise StepError(f"{files.rec}: read {expected - remaining} of {expected} records; the file is truncated.")
    return check_labels(files, np.concatenate(labels), None), np.concatenate(probs)
