"""Faults of the prepare step beyond bad CSVs: hostile image headers, a killed worker, a full or
unwritable output. Each ends in a listed skip or one sentence, never a hang or a traceback, and
a failed run leaves nothing under a final name."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from test_prepare_bad_input import OPTIONS, TRAIN, fails, no_records_left

from gtsrb.common.contract import MANIFEST_FILE, SPLITS
from gtsrb.common.failure import StepError
from gtsrb.prepare.step import PrepareOptions, prepare
from testkit.prepare import write_official


@pytest.fixture
def official(tmp_path) -> Path:
    return write_official(tmp_path / "data", tracks=2, frames=3, test_per_class=2)


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (an 'image bomb')."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


def test_absurd_image_headers_are_skipped_and_listed(official, tmp_path):
    folder = official / TRAIN / "00004"
    (folder / "00000_00000.ppm").write_bytes(b"P6\n100000 100000\n255\n" + bytes(1024))  # cv2.error before
    (folder / "00000_00001.ppm").write_bytes(png_header_only(30000, 30000))  # a PNG under a .ppm name
    (folder / "00001_00000.ppm").write_bytes(b"P6\n7000 7000\n255\n" + bytes(1024))  # under PIL's limit, over ours
    manifest = prepare(official, tmp_path / "out", PrepareOptions(image_size=16, workers=2, max_skipped_fraction=0.05))
    listed = {entry["file"]: entry["reason"] for entry in manifest["skipped"]}
    assert sorted(listed) == [f"Final_Training/Images/00004/{n}.ppm" for n in ("00000_00000", "00000_00001", "00001_00000")]
    assert all("too large to decode" in reason for reason in listed.values()), listed
    assert "7000x7000" in listed["Final_Training/Images/00004/00001_00000.ppm"]


def worker_pids(parent: int) -> list[int]:
    """Processes whose parent is `parent` (the pool's workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_a_killed_worker_fails_the_step_instead_of_hanging(tmp_path):
    data = write_official(tmp_path / "data", tracks=4, frames=10, test_per_class=2)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    argv = [sys.executable, "-m", "gtsrb.prepare", "--input", str(data), "--output", str(tmp_path / "out"),
            "--image-size", "16", "--workers", "2"]
    # Its own process group: on a hang, the surviving workers (which hold the pipes) die with it.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while not (workers := worker_pids(proc.pid)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert workers, "the pool never started"
    os.kill(workers[0], signal.SIGKILL)  # what the OOM killer does
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("prepare hangs after a worker was killed")
    assert proc.returncode == 1, stderr
    assert "worker process died" in stderr and "memory" in stderr, stderr
    assert "Traceback" not in stderr
    assert "worker process died" in (tmp_path / "ml" / "output" / "message").read_text()
    assert no_records_left(tmp_path / "out")


def test_disk_full_at_the_manifest_leaves_nothing_final(official, tmp_path):
    out = tmp_path / "out"
    (out / "manifest").mkdir(parents=True)
    (out / "manifest" / (MANIFEST_FILE + ".partial")).symlink_to("/dev/full")  # writes fail with ENOSPC
    with pytest.raises(StepError) as err:
        prepare(official, out, OPTIONS)
    for fragment in ("manifest.json.partial", "No space left on device", "free space"):
        assert fragment in str(err.value), str(err.value)
    assert not [p for split in SPLITS for p in (out / split).glob("*")]  # no final and no partial split files
    assert list((out / "manifest").iterdir()) == []  # neither a manifest nor its partial


def test_unwritable_output_is_one_sentence(official, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")
    with pytest.raises(Exception) as err:
        prepare(official, out, OPTIONS)
    assert type(err.value).__name__ == "StepError", repr(err.value)
    assert str(out) in str(err.value) and "cannot write" in str(err.value)


def test_short_csv_row_names_file_and_line(official, tmp_path):
    csv = official / TRAIN / "00002" / "GT-00002.csv"
    lines = csv.read_text().splitlines()
    lines[3] = ";".join(lines[3].split(";")[:4])
    csv.write_text("\n".join(lines) + "\n")
    fails(official, tmp_path / "out", "GT-00002.csv, line 4", "4 fields", "header has 8")


def test_no_validation_tracks_says_why(tmp_path):
    data = write_official(tmp_path / "data", tracks=1, frames=3, test_per_class=1)
    message = fails(data, tmp_path / "out", "no validation images", "--validation-fraction 0.1", "two tracks")
    assert "unreadable" not in message
    fails(data, tmp_path / "out2", "--validation-fraction 0.0", options=PrepareOptions(image_size=16, validation_fraction=0.0))
