"""A step's earlier outputs are kept aside while it runs: put back if it fails, deleted once it
has succeeded. So a bad input (a wrong DATA=) never costs the work of an earlier run.

While a step runs, each of its earlier outputs waits under `<name>.previous`. A run killed
mid-step leaves them there; the next run puts them back before it looks for reusable steps.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".previous"


def aside(path: Path) -> Path:
    """Where `path` waits while its step runs."""
    return path.with_name(path.name + SUFFIX)


def remove(path: Path) -> None:
    """Delete a file, folder or link if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def restore_interrupted(paths: Sequence[Path]) -> None:
    """Put back outputs a killed run left aside (what lies under the final name is its partial work)."""
    for path in paths:
        if aside(path).exists():
            remove(path)
            aside(path).rename(path)


@contextmanager
def kept_until_replaced(paths: Sequence[Path]) -> Iterator[None]:
    """Move `paths` aside for the step in the block; restore them if it raises, else delete them."""
    restore_interrupted(paths)
    moved = [path for path in paths if path.exists() or path.is_symlink()]
    for path in moved:
        path.rename(aside(path))
    try:
        yield
    except BaseException:
        for path in paths:  # the failed step's partial output
            remove(path)
        for path in moved:
            aside(path).rename(path)
        raise
    for path in moved:
        remove(aside(path))
