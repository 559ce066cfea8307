"""Two emulated instances on 127.0.0.1: the real train entry point on each (launcher, ps-lite
scheduler, servers and workers), as pipelines.local.emulated_hosts runs them for `make demo INSTANCES=2`.

They assert what the issue asks: disjoint records per worker (counted), the first host alone
writes the model, a dead or missing host fails the job with a sentence naming it within a bounded
time, SIGTERM on one host stops every host with a checkpoint the next run resumes from, and no
process is left running.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gtsrb.common.failure import failure_reason
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from pipelines.local import emulated_hosts
from pipelines.local.emulated_job import JobDirs
from testkit.train import FAST_HPS, ROOT

pytestmark = pytest.mark.slow

PEER_TIMEOUT = 8  # seconds: the bound on noticing a dead or missing host
HPS = {**FAST_HPS, "epochs": "2", "peer_timeout": str(PEER_TIMEOUT), "fit_on_validation": "False", "min_class_share": "0"}
LONG = {**HPS, "epochs": "40"}  # runs until a test interrupts it
ROLE_LINE = re.compile(r"event=role role=(\w+) host=(\S+) pid=(\d+)")


def start(tmp_path: Path, channels: dict[str, Path], hps: dict[str, str], only_first: bool = False) -> tuple[list, list]:
    """Every host of a 2-host job (or only algo-1); their Host records and processes."""
    hosts = emulated_hosts.prepare_hosts(JobDirs(tmp_path / "job"), 2, channels, hps, 0)
    return hosts, launch(tmp_path, hosts[:1] if only_first else hosts, hps)


def launch(tmp_path: Path, hosts: list, hps: dict[str, str]) -> list[subprocess.Popen]:
    """`python -m gtsrb.train` as each host's toolkit would start it, output in tmp_path/HOST.log."""
    argv = [sys.executable, "-m", "gtsrb.train", *hyperparameters_to_args(hps)]
    return [subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **h.env},
                             stdout=log_of(tmp_path, h.name).open("wb"), stderr=subprocess.STDOUT) for h in hosts]


def log_of(tmp_path: Path, host: str) -> Path:
    return tmp_path / f"{host}.log"


def tails(tmp_path: Path) -> str:
    """The end of every host's log, for a failure message."""
    return "\n".join(f"--- {h}\n" + log_of(tmp_path, h).read_text(errors="replace")[-4000:]
                     for h in ("algo-1", "algo-2") if log_of(tmp_path, h).is_file())


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit codes; kills and fails the test when a host hangs."""
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(0.1, deadline - time.monotonic())) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"a host did not end within {timeout} s: a hang")


def role_pids(tmp_path: Path, host: str) -> dict[str, int]:
    text = log_of(tmp_path, host).read_text(errors="replace")
    return {role: int(pid) for role, h, pid in ROLE_LINE.findall(text) if h == host}


def wait_for(path: Path, pattern: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and re.search(pattern, path.read_text(errors="replace"), re.M):
            return
        time.sleep(0.3)
    pytest.fail(f"{pattern!r} never appeared in {path}")


def assert_nothing_left(tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    """No launcher, scheduler, server or worker of the job is alive."""
    pids = [p.pid for p in procs] + [pid for h in ("algo-1", "algo-2") if log_of(tmp_path, h).is_file()
                                     for pid in role_pids(tmp_path, h).values()]
    time.sleep(0.5)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "zombie" not in
             Path(f"/proc/{pid}/status").read_text().lower()]
    assert not alive, f"left running: {alive}"


def test_two_hosts_train_on_disjoint_records_and_one_speaks(tmp_path: Path, channels: dict[str, Path]) -> None:
    hosts, procs = start(tmp_path, channels, HPS)
    assert wait_all(procs, 300) == [0, 0], log_of(tmp_path, "algo-1").read_text()[-3000:]
    parts = [json.loads((h.job.output / "data" / f"records-{h.name}.json").read_text()) for h in hosts]
    first, second = (set(p["positions"]) for p in parts)
    total = parts[0]["total"]
    assert not first & second  # disjoint ...
    assert first | second == set(range(total))  # ... and together every record once
    assert abs(len(first) - len(second)) <= 1  # half each, not all of it each
    assert (hosts[0].job.model_dir / "model-symbol.json").is_file()  # the first host speaks
    assert not hosts[1].job.model_dir.exists() or not any(hosts[1].job.model_dir.iterdir())
    first_log, second_log = (log_of(tmp_path, h).read_text() for h in ("algo-1", "algo-2"))
    assert len(re.findall(r"^epoch=\d+/", first_log, re.M)) == 2 and not re.search(r"^epoch=\d+/", second_log, re.M)
    history = json.loads((hosts[0].job.model_dir / "history.json").read_text())
    steps = total // int(HPS["batch_size"])
    assert history[0]["train_acc"] > 0 and all(h["val_acc"] >= 0 for h in history)
    assert f"event=training_split parts=1 records={total}" in first_log and steps > 0
    assert_nothing_left(tmp_path, procs)


def test_a_killed_worker_fails_the_job_naming_its_host(tmp_path: Path, channels: dict[str, Path]) -> None:
    hosts, procs = start(tmp_path, channels, LONG)
    wait_for(log_of(tmp_path, "algo-1"), r"^epoch=1/")  # training under way on both
    os.kill(role_pids(tmp_path, "algo-2")["worker"], signal.SIGKILL)
    killed = time.monotonic()
    codes = wait_all(procs, PEER_TIMEOUT + 30)
    assert codes[0] == 1 and codes[1] == 1
    assert time.monotonic() - killed < PEER_TIMEOUT + 20  # a dead process is noticed at once, not after the timeout
    reason = failure_reason(hosts[0].job.failure_file)
    assert "algo-2" in reason and "SIGKILL" in reason, reason
    assert_nothing_left(tmp_path, procs)


def test_a_host_that_never_connects_fails_the_job_in_bounded_time(tmp_path: Path, channels: dict[str, Path]) -> None:
    hosts, procs = start(tmp_path, channels, HPS, only_first=True)
    started = time.monotonic()
    assert wait_all(procs, PEER_TIMEOUT + 30) == [1]
    assert time.monotonic() - started < PEER_TIMEOUT + 40  # + start-up (imports) on a loaded 2-core machine
    reason = failure_reason(hosts[0].job.failure_file)
    assert reason.startswith(f"host algo-2 never connected within peer_timeout={PEER_TIMEOUT} s"), reason
    assert_nothing_left(tmp_path, procs)


def test_sigterm_on_one_host_stops_every_host_and_the_job_resumes(tmp_path: Path, channels: dict[str, Path]) -> None:
    hosts, procs = start(tmp_path, channels, LONG)
    wait_for(log_of(tmp_path, "algo-1"), r"^epoch=1/")
    procs[1].send_signal(signal.SIGTERM)  # SIGTERM on algo-2 only
    assert wait_all(procs, PEER_TIMEOUT + 60) == [0, 0], tails(tmp_path)
    # the first host wrote the checkpoint every host stopped at (mid-epoch, or at the epoch's end when agreed there)
    assert re.search(r"event=stopped reason=\S+ checkpoint=\S+/checkpoints/step-\d{4}-\d{6} ", log_of(tmp_path, "algo-1").read_text())
    assert_nothing_left(tmp_path, procs)
    # a restarted job (SageMaker downloads the same checkpoint prefix to every host) resumes on both
    for host in hosts:
        host.job.failure_file.unlink(missing_ok=True)
    procs = restart(tmp_path, hosts)
    wait_for(log_of(tmp_path, "algo-1"), r"event=resume checkpoint=")
    wait_for(log_of(tmp_path, "algo-2"), r"event=resume checkpoint=")
    # a SIGTERM on both hosts right after the resume (the handler is there before the kvstore connects)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    assert wait_all(procs, PEER_TIMEOUT + 60) == [0, 0], tails(tmp_path)
    assert_nothing_left(tmp_path, procs)


def restart(tmp_path: Path, hosts: list) -> list[subprocess.Popen]:
    """The same job started again on the same /opt/ml folders (the checkpoints are kept)."""
    return launch(tmp_path, hosts, LONG)
