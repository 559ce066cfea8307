"""Progress on work a person waits for: a tqdm bar in a terminal, a plain line every
LINE_INTERVAL_S seconds otherwise (a log file, CI, the local pipeline's pipe), where tqdm's
carriage-return redraws would pile up as one unreadable line."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from tqdm import tqdm

LINE_INTERVAL_S = 15.0


class LineStream:
    """A stream for tqdm that writes each redraw as a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        """One line per non-empty redraw (tqdm starts each with a carriage return)."""
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()


def progress(iterable: Iterable | None = None, stream: TextIO | None = None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs) on `stream` (stderr): a bar on a terminal, else periodic lines."""
    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(iterable, file=stream, **kwargs)
    tqdm.monitor_interval = 0  # its monitor thread redraws stalled bars: a repeated line here
    return tqdm(iterable, file=LineStream(stream), mininterval=LINE_INTERVAL_S, ascii=True, ncols=100, **kwargs)
