"""Two workers with the real parameter server (scheduler, a server per host, two workers on
127.0.0.1) against one host with two devices: the same data, the same updates, the same statistics.

Two hosts with one device each must train exactly like one host with two (each worker's half of
the global batch is what one device gets; the kvstore sums the gradients either way), so the
weights after a few updates are compared number by number, which a test of accuracy on a few
epochs cannot do (runs from scratch spread too widely there). Also counted: what each worker's
iterator reads (disjoint halves of the channel, together all of it), what `epochs` and
`max_train_images` become, the BatchNorm statistics (different per worker before the average,
equal after it), and a resume point that differs between hosts (a sentence on every host).

Found with this test (2026-12-05): about one run in three or four, the two workers' summed
gradients of the second update came back 20-70x too large, or a server died with ps-lite's
`Check failed: !stored.is_none(): init N first`: MXNet 1.9.1's kv.init did not wait for the first
worker's push of CPU arrays before its barrier (fixed in gtsrb.train.distributed._settled_init;
docs/training.md). It holds the issue's "two hosts train like one" number by number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from gtsrb.train.cluster import Cluster
from gtsrb.train.launcher import ROLE_COMMAND
from pipelines.local.emulated_hosts import LOOPBACK, free_port, host_names
from testkit.train import ROOT

pytestmark = pytest.mark.slow

SCRIPT = str(ROOT / "tests" / "train" / "dist_worker_run.py")
HOSTS = tuple(host_names(2))


def role_env(monkeypatch: pytest.MonkeyPatch, port: int, host: str, role: str) -> dict[str, str]:
    """The environment the launcher gives one role of `host` (DMLC_* from gtsrb.train.cluster)."""
    monkeypatch.setenv("DMLC_PS_ROOT_URI", LOOPBACK)
    monkeypatch.setenv("DMLC_PS_ROOT_PORT", str(port))
    return {**os.environ, "OMP_NUM_THREADS": "1", **Cluster(HOSTS, host, "lo").role_env(role)}


def start_job(tmp_path: Path, channels: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, subprocess.Popen]:
    """scheduler on algo-1, a server and a worker (the script) on each host."""
    port, procs = free_port(), {}
    procs["scheduler"] = subprocess.Popen(ROLE_COMMAND, env=role_env(monkeypatch, port, HOSTS[0], "scheduler"),
                                          stderr=(tmp_path / "scheduler.err").open("wb"))
    for host in HOSTS:
        procs[f"server-{host}"] = subprocess.Popen(ROLE_COMMAND, env=role_env(monkeypatch, port, host, "server"),
                                                   stderr=(tmp_path / f"server-{host}.err").open("wb"))
        env = {**role_env(monkeypatch, port, host, "worker"), "SM_HOSTS": json.dumps(HOSTS), "SM_CURRENT_HOST": host,
               "SAGEMAKER_BASE_DIR": str(tmp_path / host)}
        procs[host] = subprocess.Popen([sys.executable, SCRIPT, str(channels["train"].parent), str(tmp_path), "auto"],
                                       cwd=ROOT, env=env, stdout=(tmp_path / f"{host}.out").open("wb"),
                                       stderr=(tmp_path / f"{host}.err").open("wb"))
    return procs


def one_host(tmp_path: Path, channels: dict[str, Path]) -> dict:
    """The reference: one host, two CPU devices (the multi-device path), no ps-lite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DMLC_", "SM_HOSTS", "SM_CURRENT_HOST"))}
    done = subprocess.run([sys.executable, SCRIPT, str(channels["train"].parent), str(tmp_path), "cpu:2"], cwd=ROOT,
                          env={**env, "OMP_NUM_THREADS": "1", "SAGEMAKER_BASE_DIR": str(tmp_path / "one-host")},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_job(tmp_path: Path, procs: dict[str, subprocess.Popen]) -> dict[str, dict]:
    """Every role ends by itself with 0 (nothing left running); the workers' reports."""
    try:
        codes = {name: proc.wait(timeout=240) for name, proc in procs.items()}
    except subprocess.TimeoutExpired:
        for proc in procs.values():
            proc.kill()
            proc.wait()
        pytest.fail("a role of the 2-host job did not end within 240 s: a hang (or a server died)")
    errors = "\n".join((tmp_path / f"{h}.err").read_text(errors="replace")[-2000:] for h in HOSTS)
    assert set(codes.values()) == {0}, (codes, errors)
    return {h: json.loads((tmp_path / f"{h}.out").read_text().strip().splitlines()[-1]) for h in HOSTS}


def load(tmp_path: Path, host: str, when: str) -> dict[str, np.ndarray]:
    """One run's parameters `before` or `after` the workers' BatchNorm average."""
    return {k.split(":", 1)[1]: v.asnumpy() for k, v in mx.nd.load(str(tmp_path / f"{host}.params")).items()
            if k.startswith(f"{when}:")}


def test_two_workers_train_exactly_like_one_host_with_two_devices(tmp_path: Path, channels: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    two, one_dir = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one_dir.mkdir()
    reports = wait_job(two, start_job(two, channels, monkeypatch))
    first, second = reports["algo-1"], reports["algo-2"]
    reference = one_host(one_dir, channels)
    assert (first["kvstore"], second["kvstore"], reference["kvstore"]) == ("dist_sync", "dist_sync", "device")
    assert (first["rank"], second["rank"], first["workers"]) == (0, 1, 2)

    # the records each worker's iterator reads: disjoint halves, together the channel once
    assert not set(first["records"]) & set(second["records"])
    assert Counter(first["records"]) + Counter(second["records"]) == Counter(reference["records"])
    assert len(first["records"]) == len(second["records"]) == len(reference["records"]) // 2

    # epochs, max_train_images and the global batch mean the same: the whole data set, every host's images
    for key in ("epochs", "batch_size", "steps_per_epoch", "train_count"):
        assert first[key] == second[key] == reference[key], key
    assert reference["epochs"] == 2  # max_train_images=480 over 240 records: fitted from 3 to 2 on one host and two
    assert (first["worker_batch"], reference["worker_batch"]) == (8, 16)

    # the same updates: every trained weight equal to the one-host run's
    one = load(one_dir, "one-host", "after")
    workers = [load(two, h, "after") for h in HOSTS]
    assert one.keys() == workers[0].keys() == workers[1].keys()
    stats = [name for name in one if name.endswith(("running_mean", "running_var"))]
    # (equal to ~1e-7 in some runs; in most, every trained weight is off by up to ~2e-4 after the 3 updates,
    # the same amount each time, cause not known: docs/training.md. The corruption this test found was
    # 3e-3 to 4, so the bound sits between.)
    for name in sorted(set(one) - set(stats)):
        for weights in workers:
            np.testing.assert_allclose(weights[name], one[name], rtol=1e-3, atol=5e-4, err_msg=name)

    # BatchNorm statistics: each worker's own before the average (other halves of the batches), their
    # mean on every worker after it. (Not compared with the one-host run: MXNet's Trainer, at its first
    # step, overwrites every device's statistics with rank 0's, after the first batch updated them;
    # which worker is ps-lite's rank 0 follows the connection order.)
    before = [load(two, h, "before") for h in HOSTS]
    assert stats and all(not np.allclose(before[0][n], before[1][n], rtol=1e-4, atol=1e-6) for n in stats)
    for name in stats:
        mean = (before[0][name] + before[1][name]) / 2
        for weights in workers:
            np.testing.assert_allclose(weights[name], mean, rtol=1e-5, atol=1e-7, err_msg=name)

    # another resume point on one host: a sentence on both, naming the host
    assert "host algo-1 resumes from epoch 2 batch 3 but other hosts do not" in first["mismatch"]
    assert "host algo-2 resumes from epoch 2 batch 4 but other hosts do not" in second["mismatch"]
