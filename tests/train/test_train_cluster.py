"""The pieces of multi-host and multi-device training that need no second host: the job's hosts
from SageMaker's files, the DMLC_* variables, the kvstore choice, the batch and lr rule, the
workers' data parts, and the pipeline's TrainingInstanceCount check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import stored_size
from gtsrb.train import distributed
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.cluster import Cluster
from gtsrb.train.combine import read_records, worker_split
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import train_epoch
from gtsrb.train.step import prepare_run
from pipelines.instances import check_training_instance_count
from testkit.train import FAST_HPS, IMAGE_SIZE, balanced_labels, write_split


def test_the_hosts_come_from_resourceconfig(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_dir / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "ethwe"}))
    monkeypatch.setenv("DMLC_PS_ROOT_URI", "10.0.0.1")  # what DNS would answer for algo-1
    cluster = Cluster.from_environment()
    assert (cluster.leader, cluster.current, cluster.is_leader, cluster.size) == ("algo-1", "algo-2", False, 2)
    env = cluster.role_env("server")
    assert env["DMLC_ROLE"] == "server" and env["DMLC_PS_ROOT_URI"] == "10.0.0.1" and env["DMLC_PS_ROOT_PORT"] == "8000"
    assert (env["DMLC_NUM_SERVER"], env["DMLC_NUM_WORKER"], env["DMLC_INTERFACE"]) == ("2", "2", "ethwe")


def test_one_host_without_resourceconfig(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Cluster.from_environment().is_distributed
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-1")
    assert Cluster.from_environment().is_leader


def test_a_bad_resourceconfig_names_the_file(base_dir: Path) -> None:
    config = base_dir / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(StepError, match="current_host 'algo-9' is not one of the hosts"):
        Cluster.from_environment()


def test_the_kvstore_choice() -> None:
    assert distributed.kvstore_type("auto", 1, False) == "local"
    assert distributed.kvstore_type("auto", 4, False) == "device"
    assert distributed.kvstore_type("nccl", 4, False) == "nccl"
    assert distributed.kvstore_type("auto", 1, True) == "dist_sync"
    assert distributed.kvstore_type("device", 4, True) == "dist_device_sync"
    with pytest.raises(StepError, match="kvstore='nccl' works on one host only"):
        distributed.kvstore_type("nccl", 4, True)
    with pytest.raises(StepError, match="kvstore='nccl' needs GPUs"):
        distributed.check_kvstore("nccl", [mx.cpu(i) for i in range(4)])
    with pytest.raises(StepError, match="hyperparameter kvstore='ring' is invalid"):
        Hyperparameters.from_mapping({"kvstore": "ring"})


def test_the_batch_and_lr_rule() -> None:
    given = Hyperparameters.from_mapping({"batch_size": "128", "lr": "0.02"})
    assert given.scaled_to(4, 2) == given  # batch_size is the global batch: nothing changes with hosts
    per_device = Hyperparameters.from_mapping({"batch_size": "128", "lr": "0.02", "batch_per_device": "32"})
    scaled = per_device.scaled_to(4, 2)  # 32 x 4 GPUs x 2 hosts = 256: twice the reference batch, twice the lr
    assert (scaled.batch_size, scaled.lr) == (256, pytest.approx(0.04))
    assert per_device.scaled_to(1, 1).lr == pytest.approx(0.02 * 32 / 128)


def test_each_worker_gets_every_nth_record(tmp_path: Path) -> None:
    files = write_split(tmp_path / "sorted", "train", sorted(balanced_labels(10)), stored_size(IMAGE_SIZE))  # as prepare packs
    whole = [record for _, record in read_records([files])]
    parts = [worker_split([files], tmp_path / str(rank), 0.0, (rank, 2)) for rank in range(2)]
    (_, first, total), (_, second, _) = parts
    assert total == len(whole) and not set(first) & set(second) and sorted(first + second) == list(range(total))
    held = [record for _, record in read_records([parts[1][0]])]
    assert held == [whole[i] for i in second]  # the part file holds exactly those records
    labels = {label for label, _ in read_records([parts[0][0]])}
    assert len(labels) == 6  # a stride, not a block: every class in every part of a class-sorted split


def test_training_instance_count_is_checked() -> None:
    hp = Hyperparameters(batch_size=128)
    assert check_training_instance_count(2, hp) == 2
    with pytest.raises(StepError, match="cannot split BatchSize=128"):
        check_training_instance_count(3, hp)
    with pytest.raises(StepError, match="must be between 1 and 8"):
        check_training_instance_count(16, hp)
    assert check_training_instance_count(3, Hyperparameters(batch_size=128, batch_per_device=32)) == 3  # global batch follows
    with pytest.raises(StepError, match="cannot train with hyperparameter kvstore=nccl"):
        check_training_instance_count(2, Hyperparameters(kvstore="nccl"))
    assert check_training_instance_count(1, Hyperparameters(kvstore="nccl")) == 1


def test_per_device_batch_on_four_cpu_contexts(tmp_path: Path, channels: dict[str, Path],
                                               caplog: pytest.LogCaptureFixture) -> None:
    """devices=cpu:4 runs the multi-GPU path: 4 per device -> global batch 16, lr scaled to it."""
    hp = Hyperparameters.from_mapping({**FAST_HPS, "devices": "cpu:4", "batch_per_device": "4", "kvstore": "device"})
    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    with caplog.at_level("INFO"):
        run = prepare_run(env, hp)
    assert (run.hp.batch_size, run.hp.lr) == (16, pytest.approx(0.05 * 16 / 16))
    assert run.trainer._kvstore_params["kvstore"] == "device" and len(run.ctx) == 4
    sums = train_epoch(run, TrainingState(), epoch=0)
    assert sums["images"] == run.steps_per_epoch * 16 and sums["images"] > 0
    assert re.search(r"event=start .* batch=16 lr=0.05 workers=1", caplog.text)


def test_a_sigterm_before_the_handler_waits_for_it() -> None:
    """The launcher starts the worker with SIGTERM blocked: one sent while the worker still imports
    stays pending and reaches StopFlag's handler once installed (without the mask it kills)."""
    child = (
        "import os, signal, sys\n"
        "from gtsrb.train import launcher\n"
        "launcher._die_with_parent()\n"  # what the launcher runs in the worker before exec
        "os.kill(os.getpid(), signal.SIGTERM)\n"  # still importing: no handler yet
        "from gtsrb.train.loop import StopFlag\n"
        "flag = StopFlag(); flag.install()\n"
        "sys.exit(0 if flag.requested and flag.reason == 'SIGTERM' else 5)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
