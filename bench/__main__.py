"""Run every benchmark module of this package in turn (`python -m bench [name ...]`).

Modules in OPT_IN run only when named: `make bench-real` (`python -m bench real_gtsrb`) trains
twice on the real development set for ~20 minutes, too long for `make bench` and CI."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench

OPT_IN = frozenset({"real_gtsrb"})


def main(argv: list[str]) -> None:
    """Import each module of `bench` (or those named) and call its run()."""
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_") and m.name not in OPT_IN
    )
    for name in names:
        print(f">> bench {name}", file=sys.stderr, flush=True)
        importlib.import_module(f"bench.{name}").run()


if __name__ == "__main__":
    main(sys.argv[1:])
