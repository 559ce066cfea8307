"""Run every benchmark module of this package in turn (`python -m bench [name ...]`).

MXNet's C++ log lines (`[05:01:02] ../src/io/iter_image_recordio_2.cc:178: ...`), from this
process or a child, are kept off the console: the output is the `bench:` lines and what each
benchmark says it does.

Modules in OPT_IN run only when named: `make bench-real` (`python -m bench real_gtsrb`) trains
twice on the real development set for ~20 minutes, too long for `make bench` and CI."""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import threading

import bench
from gtsrb.common.log_filter import MXNET_LOG_LINE, ConsoleFilter


def filtered_stderr() -> tuple[int, threading.Thread]:
    """Route file descriptor 2 (ours and every child's) through a thread that drops MXNet's lines;
    return the original descriptor and the thread, for restore_stderr()."""
    original, (read, write) = os.dup(2), os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        console = ConsoleFilter(MXNET_LOG_LINE)
        while chunk := os.read(read, 65536):
            os.write(original, console.feed(chunk))
        os.write(original, console.flush())
        os.close(read)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return original, thread


def restore_stderr(original: int, thread: threading.Thread) -> None:
    """Put the original stderr back and let the filter write what it still holds."""
    sys.stderr.flush()
    os.dup2(original, 2)  # closes the pipe's last write end: the pump reads EOF and ends
    thread.join(timeout=10)

OPT_IN = frozenset({"real_gtsrb"})


def main(argv: list[str]) -> None:
    """Import each module of `bench` (or those named) and call its run()."""
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_") and m.name not in OPT_IN
    )
    original, thread = filtered_stderr()
    try:
        for name in names:
            print(f">> bench {name}", file=sys.stderr, flush=True)
            importlib.import_module(f"bench.{name}").run()
    finally:
        restore_stderr(original, thread)


if __name__ == "__main__":
    main(sys.argv[1:])
