"""`make bench-gpu` runs the benchmarks inside an image (bench/ mounted): the same command with the CPU
image, no GPU and BENCH_QUICK=1 proves the modules run there and print their lines."""

from __future__ import annotations

import re
import subprocess

import pytest

from testkit.containers import load_script

pytestmark = pytest.mark.containers
bench_image = load_script("bench_image")
LINE = re.compile(r"^bench: (\S+) ours=\S+ reference=\S+ unit=\S+ ratio=\S+$")


def test_the_gpu_benchmarks_run_in_the_image(docker: str, image: str) -> None:
    cmd = bench_image.docker_command(docker, image, "none", None, ["BENCH_QUICK=1"], list(bench_image.MODULES))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    names = {m.group(1) for m in map(LINE.match, done.stdout.splitlines()) if m}
    assert {"train-loop-vs-bare", "imagerecorditer-decode", "optimizer-host-ms-per-step"} <= names, done.stdout
    assert "bench: gpu-train-loop-vs-bare skipped: no GPU" in done.stdout  # the CPU image: no GPU lines


def test_the_make_target_gives_one_gpu_and_the_target_cpus() -> None:
    cmd = bench_image.docker_command("docker", "gtsrb-mxnet-gpu:latest", "device=0", "0-3", [], ["train_loop"])
    assert cmd[cmd.index("--gpus") + 1] == "device=0" and cmd[cmd.index("--cpuset-cpus") + 1] == "0-3"
    assert f"{bench_image.BENCH}:/opt/bench/bench:ro" in cmd and cmd[-3:] == ["-m", "bench", "train_loop"]
