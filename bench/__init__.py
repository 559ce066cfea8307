"""Benchmarks: each module measures ours against a reference in the same run (`make bench`).

Every measurement prints exactly one line:
`bench: <name> ours=<value> reference=<value> unit=<unit> ratio=<ours/reference>`.
"""

from __future__ import annotations

import os

# BENCH_QUICK=1: one short round of each measurement, to check that the benchmarks run (CI runs them
# so in the CPU image); the numbers are then not worth reading.
QUICK = os.environ.get("BENCH_QUICK") == "1"


def report(name: str, ours: float, reference: float, unit: str) -> str:
    """Print and return one benchmark line; ratio is ours/reference (higher is better for rates)."""
    line = f"bench: {name} ours={ours:.4g} reference={reference:.4g} unit={unit} ratio={ours / reference:.3f}"
    print(line, flush=True)
    return line
