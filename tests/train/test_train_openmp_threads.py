"""MXNet's OpenMP threads: one per physical core (gtsrb.common.openmp_threads), set by the packages of
the steps that run MXNet before it loads; the emulated hosts of a local multi-instance job share them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common.openmp_threads import physical_cores
from pipelines.local import emulated_hosts
from pipelines.local.emulated_job import JobDirs
from testkit.train import ROOT


def topology(root: Path, cores_of_cpus: dict[int, tuple[int, int]]) -> Path:
    """A fake /sys/devices/system/cpu: cpuN/topology/{physical_package_id,core_id}."""
    for cpu, (package, core) in cores_of_cpus.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "physical_package_id").write_text(f"{package}\n")
        (folder / "core_id").write_text(f"{core}\n")
    return root


@pytest.mark.parametrize(("cores_of_cpus", "cpus", "expected"), [
    ({0: (0, 0), 1: (0, 1)}, [0, 1], 2),  # a core per CPU (this machine kind): MXNet's default would be 1
    ({0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)}, [0, 1, 2, 3], 2),  # Hyper-Threading (ml.g5.xlarge): 4 vCPUs, 2 cores
    ({0: (0, 0), 1: (0, 0), 2: (1, 0), 3: (1, 0)}, [0, 1, 2, 3], 2),  # two packages with the same core ids
    ({0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1)}, [0, 2], 1),  # allowed only the two threads of one core
])
def test_physical_cores_counts_cores_not_hardware_threads(tmp_path, cores_of_cpus, cpus, expected):
    assert physical_cores(cpus, topology(tmp_path, cores_of_cpus)) == expected


def test_physical_cores_without_a_described_topology_counts_every_cpu(tmp_path):
    assert physical_cores([0, 1, 2], tmp_path / "absent") == 3


def omp_after_import(package: str, **env: str) -> str:
    """OMP_NUM_THREADS in a fresh interpreter after importing `package` (then MXNet, as the step does)."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = f"import os, {package}, mxnet; print(os.environ.get('OMP_NUM_THREADS', 'unset'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("package", ["gtsrb.train", "gtsrb.evaluate"])
def test_the_mxnet_steps_set_one_thread_per_core_before_mxnet_loads(package):
    assert omp_after_import(package) == str(physical_cores())
    assert omp_after_import(package, OMP_NUM_THREADS="3") == "3"  # the user's value wins


def test_emulated_hosts_share_the_machines_cores(tmp_path):
    hosts = emulated_hosts.prepare_hosts(JobDirs(tmp_path / "job"), 2, {}, {}, 0)
    assert [h.env["OMP_NUM_THREADS"] for h in hosts] == [str(max(1, physical_cores() // 2))] * 2
