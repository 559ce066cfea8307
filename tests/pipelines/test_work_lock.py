"""One run per WORK: a second `python -m pipelines.local` on a WORK in use refuses at once,
naming the first run's process, and touches nothing; a killed run never leaves a stale lock."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common.failure import StepError
from pipelines.local import cli as local
from pipelines.local import work_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\nfrom pipelines.local import work_lock\n"
    "with work_lock.hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"
)


@pytest.fixture
def first_run(tmp_path: Path):
    """Another process holding WORK's lock, as a running pipeline does."""
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(work)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield work, proc
    proc.kill()
    proc.wait()


def test_a_second_run_refuses_naming_the_first(first_run, tmp_path: Path) -> None:
    work, holder = first_run
    checkpoint = work / "train" / "checkpoints" / "epoch-0003" / "state.json"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("{}")
    (tmp_path / "data").mkdir()
    second = subprocess.run([sys.executable, "-m", "pipelines.local", "--work", str(work), "--data", str(tmp_path / "data")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert second.returncode == local.EXIT_FAILED
    assert f"is in use by another run (PID {holder.pid}, started" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    assert checkpoint.is_file()  # the first run's checkpoints are left alone


def test_a_killed_run_leaves_no_stale_lock(first_run) -> None:
    work, holder = first_run
    with pytest.raises(StepError, match=f"PID {holder.pid}"):
        with work_lock.hold(work):
            pass
    holder.send_signal(signal.SIGKILL)  # a crash or the OOM killer: the kernel drops the flock
    holder.wait()
    with work_lock.hold(work) as lock:
        assert "PID" in lock.read_text()


def test_nan_threshold_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        local.parse_args(["--threshold", "nan"])
    assert exit_info.value.code == 2
    assert "--threshold nan: must be a number" in capsys.readouterr().err
    assert math.isfinite(local.parse_args(["--threshold", "0.5"]).threshold)
