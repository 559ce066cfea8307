"""Break packed splits the way a bad disk or a bad tool does, for the train and evaluate tests."""

from __future__ import annotations

import mxnet as mx

from gtsrb.common.contract import RecordFiles


def corrupt_record(files: RecordFiles, position: int) -> None:
    """Replace one record's image by bytes no decoder reads, keeping .rec and .idx consistent."""
    reader = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "r")
    records = [reader.read_idx(key) for key in reader.keys]
    reader.close()
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    for i, record in enumerate(records):
        if i == position:
            header, _ = mx.recordio.unpack(record)
            record = mx.recordio.pack(header, b"\xff\xd8\xff\xe0 not really a JPEG" * 20)
        writer.write_idx(i, record)
    writer.close()
