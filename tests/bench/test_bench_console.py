"""`make bench` keeps MXNet's C++ log lines off the console, from its own process and its children."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MXNET_LINE = "[05:01:02] ../src/io/iter_image_recordio_2.cc:178: ImageRecordIOParser2: uses 1 threads\n"
CHILD = f"import sys; sys.stderr.write({MXNET_LINE + 'child kept' + chr(10)!r})"
PROBE = f"""
import os, subprocess, sys
from bench.__main__ import filtered_stderr, restore_stderr
original, thread = filtered_stderr()
os.write(2, {(MXNET_LINE + 'ours kept' + chr(10)).encode()!r})
subprocess.run([sys.executable, "-c", {CHILD!r}], check=True)
restore_stderr(original, thread)
"""


def test_mxnet_lines_are_dropped_and_everything_else_kept(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    done = subprocess.run([sys.executable, str(tmp_path / "probe.py")], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "ours kept" in done.stderr and "child kept" in done.stderr
    assert "iter_image_recordio_2.cc" not in done.stderr
