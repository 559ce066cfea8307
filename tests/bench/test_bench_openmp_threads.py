"""bench/openmp_threads.py: the two fresh processes run the real train loop and the line is well formed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^bench: train-openmp-threads ours=(\S+) reference=(\S+) unit=img/s ratio=(\S+)$")


@pytest.mark.slow
def test_one_line_with_both_rates() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "openmp_threads"], cwd=REPO, capture_output=True, text=True,
                          env={"BENCH_QUICK": "1", "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [m for m in map(LINE.match, done.stdout.splitlines()) if m]
    assert len(lines) == 1, done.stdout
    ours, reference, ratio = map(float, lines[0].groups())
    assert ours > 0 and reference > 0 and ratio == pytest.approx(ours / reference, rel=0.01)
