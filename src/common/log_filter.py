"""Console filtering shared by the host's runners and `make bench` (which also runs inside the
images, so it lives here rather than in `pipelines`): MXNet's C++ log lines are hidden."""

from __future__ import annotations

import re

# MXNet's C++ log lines (`[05:01:02] ../src/io/iter_image_recordio_2.cc:178: ...`)
MXNET_LOG_LINE = re.compile(rb"\[\d\d:\d\d:\d\d\] [^\s:]+\.(?:cc|h):\d+: [^\n]*\n")

# An unfinished line that may still become one of those (or a step's `ERROR: ...` line): held
# back until its end arrives.
_MAYBE_HIDDEN_START = re.compile(rb"\[[0-9:]*(?:\](?: [^\n]*)?)?\Z|\AE(?:R(?:R(?:O(?:R(?::(?: [^\n]*)?)?)?)?)?)?\Z")


class ConsoleFilter:
    """What of a job's output reaches the console: everything as it comes (progress bars redraw
    with carriage returns), except whole lines that match `hide`."""

    def __init__(self, hide: re.Pattern[bytes] | None) -> None:
        self.hide = hide
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The part of `chunk` to show now."""
        if self.hide is None:
            return chunk
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        complete, tail = data[:cut], data[cut:]
        held = _MAYBE_HIDDEN_START.search(tail)
        self.pending = tail[held.start():] if held else b""
        return self.hide.sub(b"", complete) + (tail[: held.start()] if held else tail)

    def flush(self) -> bytes:
        """What is left when the job has ended."""
        rest, self.pending = self.pending, b""
        return rest
