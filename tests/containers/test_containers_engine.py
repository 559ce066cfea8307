"""containers/ci/engine.sh before it starts anything: too little disk is one sentence, not ENOSPC mid-build."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from testkit.containers import CONTAINERS, run

pytestmark = pytest.mark.containers


def test_too_little_disk_stops_it_before_dockerd_starts(tmp_path: Path) -> None:
    engine_dir = tmp_path / "engine"
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    if run(["docker", "info"], env=env).returncode == 0:
        pytest.skip("a Docker engine answers on the default socket: engine.sh would use it and start none")
    env |= {"ENGINE_DIR": str(engine_dir), "ENGINE_MIN_FREE_GB": "1000000", "REGISTRY_PORT": "5999"}
    result = run([str(CONTAINERS / "ci" / "engine.sh"), "run", "--", "true"], env=env, timeout=120)
    assert result.returncode == 1
    assert re.search(rf"{re.escape(str(engine_dir))} has \d+ GB free; the images and the container tests need "
                     r"~1000000 GB with the (overlay2|vfs) driver: free some space", result.stderr), result.stderr
    assert "starting dockerd" not in result.stderr and not engine_dir.exists()  # nothing started, nothing left
