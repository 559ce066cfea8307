"""Our RecordIO writer against MXNet's own: the same bytes, and MXNet reads ours back."""

from __future__ import annotations

import os
import struct

import mxnet as mx

from gtsrb.common.recordio_format import MAGIC, IndexedRecordWriter, image_record

M = struct.pack("<I", MAGIC)
# Lengths 0-3 mod 4, and the magic word at aligned offsets (split records), unaligned (not split),
# first, last, twice in a row.
PAYLOADS = [b"", b"a", b"abc", b"abcd", b"x" * 1001, M, b"ab" + M + b"cd", M + b"1234" + M + b"zz",
            b"1234" + M + M + b"q", b"123" + M + b"4567", b"abcd" + M, os.urandom(5000)]


def test_byte_identical_to_mxnet_and_read_back(tmp_path):
    ref = mx.recordio.MXIndexedRecordIO(str(tmp_path / "ref.idx"), str(tmp_path / "ref.rec"), "w")
    ours = IndexedRecordWriter(tmp_path / "ours.idx", tmp_path / "ours.rec")
    for key, payload in enumerate(PAYLOADS):
        ref.write_idx(key, payload)
        ours.write_idx(key, payload)
    ref.close()
    ours.close()
    assert (tmp_path / "ours.rec").read_bytes() == (tmp_path / "ref.rec").read_bytes()
    assert (tmp_path / "ours.idx").read_text() == (tmp_path / "ref.idx").read_text()
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "ours.idx"), str(tmp_path / "ours.rec"), "r")
    assert [reader.read_idx(k) for k in range(len(PAYLOADS))] == PAYLOADS


def test_image_record_equals_mxnet_pack():
    jpeg = os.urandom(300)
    assert image_record(42, 7, jpeg) == mx.recordio.pack(mx.recordio.IRHeader(0, 42.0, 7, 0), jpeg)
    header, payload = mx.recordio.unpack(image_record(3, 9, jpeg))
    assert (header.label, header.id, payload) == (3.0, 9, jpeg)
