"""OpenMP threads for MXNet's CPU operators: one per physical core this process may run on.

Without OMP_NUM_THREADS, MXNet 1.9.1 (src/engine/openmp.cc) runs half the CPUs it sees on x86,
assuming two hardware threads per core. That holds on Hyper-Threading machines (ml.c5, ml.g5: two
vCPUs per core) and leaves half the machine idle where every CPU is a core (this project's 2-core
machines: the CPU recipe trained at ~830 img/s on one core instead of ~1,245 img/s on both;
`make bench` prints the ratio). MXNet reads the variable once, when it loads, so the steps that
run MXNet set it in their package, before any import of mxnet; a value already set wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CPU_TOPOLOGY = Path("/sys/devices/system/cpu")
VARIABLE = "OMP_NUM_THREADS"


def physical_cores(cpus: Iterable[int] | None = None, topology: Path = CPU_TOPOLOGY) -> int:
    """Distinct (package, core) pairs among `cpus` (default: the CPUs this process may run on);
    every CPU counts as a core when the kernel does not describe its topology."""
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    cores = set()
    for cpu in cpus:
        folder = topology / f"cpu{cpu}" / "topology"
        try:
            cores.add(((folder / "physical_package_id").read_text().strip(), (folder / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def use_physical_cores() -> None:
    """OMP_NUM_THREADS = the physical cores, unless the environment already says how many."""
    os.environ.setdefault(VARIABLE, str(physical_cores()))
