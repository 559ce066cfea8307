"""The final fit on train + validation: one packed split holding the records of both.

Once the recipe's epoch count is chosen (the CPU recipe runs a fixed cosine schedule and keeps
the last epoch), held-out tracks are worth more as training data: GTSRB's rare classes have
only ~7 physical signs. The validation split is still scored every epoch, but it is then seen
data: its accuracy says only that training converged (docs/accuracy.md).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import mxnet as mx
import numpy as np

from gtsrb.common import contract

log = logging.getLogger(__name__)

COMBINED = "train-and-validation"  # file stem of the combined split inside the checkpoint folder


def read_records(parts: list[contract.RecordFiles]) -> list[tuple[int, bytes]]:
    """(label, packed bytes) of every record of `parts`, in order."""
    records = []
    for part in parts:
        reader = mx.recordio.MXIndexedRecordIO(str(part.idx), str(part.rec), "r")
        try:
            for key in reader.keys:
                record = reader.read_idx(key)
                header, _ = mx.recordio.unpack(record)
                records.append((int(np.asarray(header.label).ravel()[0]), record))
        finally:
            reader.close()
    return records


def copies_per_class(labels: list[int], min_class_share: float) -> dict[int, int]:
    """How often to write each class's records so that every class has at least
    `min_class_share` of the largest class's count (whole copies; 1 = as it is)."""
    counts = Counter(labels)
    target = min_class_share * max(counts.values())
    return {label: max(1, math.ceil(target / n)) for label, n in counts.items()}


def combine_splits(parts: list[contract.RecordFiles], folder: Path, min_class_share: float = 0.0) -> contract.RecordFiles:
    """Write every record of `parts` (packed bytes as they are) into one indexed split in `folder`,
    rare classes repeated up to `min_class_share` of the largest (augmentation varies the copies)."""
    return worker_split(parts, folder, min_class_share)[0]


def worker_split(parts: list[contract.RecordFiles], folder: Path, min_class_share: float = 0.0,
                 worker: tuple[int, int] = (0, 1)) -> tuple[contract.RecordFiles, list[int], int]:
    """combine_splits for one worker of several (`worker=(rank, count)`): only every count-th
    record from `rank` on is written, that worker's part (a stride, not a block: packed splits are sorted by class, and a block would give
    each worker other classes). Returns the split, the positions in the whole sequence of the
    records it holds (what the worker trains on, reported in its records file) and the whole count.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = contract.record_files(folder, COMBINED)
    records = read_records(parts)
    copies = copies_per_class([label for label, _ in records], min_class_share)
    rank, count = worker
    writer = mx.recordio.MXIndexedRecordIO(str(out.idx), str(out.rec), "w")
    position, kept = 0, []
    try:
        for label, record in records:
            for _ in range(copies[label]):
                if position % count == rank:
                    writer.write_idx(len(kept), record)
                    kept.append(position)
                position += 1
    finally:
        writer.close()
    log.info("event=training_split parts=%d records=%d repeated_classes=%d worker=%d/%d worker_records=%d",
             len(parts), position, sum(1 for n in copies.values() if n > 1), rank + 1, count, len(kept))
    return out, kept, position
