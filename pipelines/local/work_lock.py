"""One run per WORK folder: an advisory lock held for the whole local pipeline run.

Two runs in one WORK would delete each other's checkpoints and model directory, and two runs
creating a new MLflow store at once fail inside SQLite. The lock is `flock` on WORK/.lock: the
kernel releases it when the holding process dies (a crash or SIGKILL never leaves a stale lock);
the file's text only names the holder for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gtsrb.common.failure import StepError

LOCK_FILE = ".lock"


def holder(lock_path: Path) -> str:
    """Who holds the lock, as its holder wrote it ("PID 123, started ..."), or "another process"."""
    try:
        text = lock_path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


@contextlib.contextmanager
def hold(work: str | Path) -> Iterator[Path]:
    """Hold WORK's lock for the `with` block, or fail at once naming the run that holds it."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lock_path = work / LOCK_FILE
    handle = open(lock_path, "a+")  # not "w": truncating would erase the holder's name
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StepError(
                f"{work} is in use by another run ({holder(lock_path)}); wait for it to finish, stop it, "
                "or give this run another --work folder."
            ) from None
        handle.truncate(0)
        handle.write(f"PID {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n")
        handle.flush()
        yield lock_path
    finally:
        handle.close()  # releases the lock
