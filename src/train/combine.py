"""The final fit on train + validation: one packed split holding the records of both.

Once the recipe's epoch count is chosen (the CPU recipe runs a fixed cosine schedule and keeps
the last epoch), held-out tracks are worth more as training data: GTSRB's rare classes have
only ~7 physical signs. The validation split is still scored every epoch, but it is then seen
data: its accuracy says only that training converged (docs/accuracy.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import mxnet as mx

from gtsrb.common import contract

log = logging.getLogger(__name__)

COMBINED = "train-and-validation"  # file stem of the combined split inside the checkpoint folder


def combine_splits(parts: list[contract.RecordFiles], folder: Path) -> contract.RecordFiles:
    """Copy every record of `parts` (packed bytes as they are) into one indexed split in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = contract.record_files(folder, COMBINED)
    writer = mx.recordio.MXIndexedRecordIO(str(out.idx), str(out.rec), "w")
    count = 0
    try:
        for part in parts:
            reader = mx.recordio.MXIndexedRecordIO(str(part.idx), str(part.rec), "r")
            try:
                for key in reader.keys:
                    writer.write_idx(count, reader.read_idx(key))
                    count += 1
            finally:
                reader.close()
    finally:
        writer.close()
    log.info("event=fit_on_validation records=%d note=val_acc_is_measured_on_training_data", count)
    return out
