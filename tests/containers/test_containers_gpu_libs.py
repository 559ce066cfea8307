"""The GPU image's CUDA libraries satisfy libmxnet.so of mxnet-cu112 (checked from the pinned wheels).

The wheels unpack to ~3.8 GB of libraries, so this runs once; that a missing library is reported
is checked in the built GPU image (test_containers_gpu_image.py), where hiding one costs nothing."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.containers import CONTAINERS, REPO, load_script, run
from testkit.disk import small_disk

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


@pytest.fixture
def disk_64m(tmp_path: Path) -> Iterator[Path]:
    yield from small_disk(tmp_path / "disk", "64m")  # libmxnet.so alone is 850 MB


def test_a_full_disk_is_one_sentence_with_the_space_needed(wheelhouse: Path, disk_64m: Path) -> None:
    result = run([sys.executable, str(CONTAINERS / "check_gpu_libs.py"), "--wheelhouse", str(wheelhouse)],
                 env={**os.environ, "TMPDIR": str(disk_64m)}, timeout=600)
    assert result.returncode == 1
    assert result.stderr.startswith("check_gpu_libs: cannot unpack mxnet_cu112-"), result.stderr
    assert "(No space left on device); the wheels' libraries need 3." in result.stderr and "Traceback" not in result.stderr
    assert list(disk_64m.iterdir()) == []  # the half-unpacked folder was deleted
