"""Our RecordIO writer against MXNet's own: the same bytes, and MXNet reads ours back."""

from __future__ import annotations

import os
import struct

import mxnet as mx

from gtsrb.common.recordio_format import MAGIC, IndexedRecordWriter, framed_records, image_record, split_records

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


def test_framed_records_cut_mxnet_files_at_record_boundaries(tmp_path):
    """A batch transform's RecordIO split (the SDK's local mode has none): each piece is one whole
    record as MXNet wrote it (split records' parts kept together), at the offset its .idx names."""
    writer = mx.recordio.MXIndexedRecordIO(str(tmp_path / "a.idx"), str(tmp_path / "a.rec"), "w")
    for key, payload in enumerate(PAYLOADS):
        writer.write_idx(key, payload)
    writer.close()
    data = (tmp_path / "a.rec").read_bytes()
    pieces = framed_records(data)
    assert b"".join(pieces) == data
    assert [split_records(piece) for piece in pieces] == [[payload] for payload in PAYLOADS]
    offsets = [int(line.split("\t")[1]) for line in (tmp_path / "a.idx").read_text().splitlines()]
    assert [sum(map(len, pieces[:i])) for i in range(len(pieces))] == offsets
