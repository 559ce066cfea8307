"""The GPU image's CUDA libraries satisfy libmxnet.so of mxnet-cu112 (checked from the pinned wheels)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testkit.containers import CONTAINERS, REPO, load_script, run

pytestmark = pytest.mark.containers
WHEELHOUSE = REPO / "build" / "wheelhouse" / "gpu"
check = load_script("check_gpu_libs")


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    if not (WHEELHOUSE / ".stamp").is_file():
        pytest.skip("needs the GPU wheelhouse: make wheelhouse VARIANT=gpu (make test-containers builds it)")
    return WHEELHOUSE


def test_every_needed_library_but_the_drivers_resolves(wheelhouse: Path) -> None:
    result = run([sys.executable, str(CONTAINERS / "check_gpu_libs.py"), "--wheelhouse", str(wheelhouse)], timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for soname in check.CUDA_LIBS:
        line = next(row for row in result.stdout.splitlines() if row.startswith(f"{soname} => "))
        assert "/nvidia/" in line and line.endswith(soname), line
    assert "0 problem(s)" in result.stdout


def test_a_missing_cuda_wheel_is_reported(wheelhouse: Path, tmp_path: Path) -> None:
    for wheel in wheelhouse.glob("*.whl"):
        if not wheel.name.startswith("nvidia_nccl"):
            (tmp_path / wheel.name).symlink_to(wheel)
    result = run([sys.executable, str(CONTAINERS / "check_gpu_libs.py"), "--wheelhouse", str(tmp_path)], timeout=600)
    assert result.returncode == 1
    assert "PROBLEM libnccl.so.2: not found" in result.stderr
