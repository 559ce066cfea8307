"""Progress on work a person waits for: a bar on a terminal, whole periodic lines elsewhere."""

from __future__ import annotations

import io

from gtsrb.common import progress


def test_off_a_terminal_progress_is_whole_lines(monkeypatch) -> None:
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.0)  # every update, to see the format
    out = io.StringIO()  # not a terminal, like a log file or the local pipeline's pipe
    for _ in progress.progress(range(3), stream=out, desc="pack train", unit="img"):
        pass
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and lines and all(line.startswith("pack train:") for line in lines)
    assert "3/3" in lines[-1]
