"""Run the benchmarks inside one of our images (`make bench-gpu`): the host venv has the CPU wheel, so
GPU lines can only come from the GPU image. bench/ is not part of the image (image code never
imports host code); it is mounted read-only and run with the image's Python and gtsrb package.

    python containers/bench_image.py --image gtsrb-mxnet-gpu:latest --gpus device=0 --cpuset-cpus 0-3 \\
        [--env MXNET_CUDNN_AUTOTUNE_DEFAULT=0] [train_loop optimizer_step]

CI runs the same command with the CPU image, `--gpus none` and BENCH_QUICK=1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
MODULES = ("train_loop", "optimizer_step")  # the ones with GPU lines
WORKDIR = "/opt/bench"


def docker_command(docker: str, image: str, gpus: str, cpuset: str | None, env: list[str], modules: list[str]) -> list[str]:
    """`docker run` of `python -m bench MODULES` in the image, bench/ mounted, no network."""
    cmd = [docker, "run", "--rm", "--network", "none", "--shm-size", "2g",
           "-v", f"{BENCH}:{WORKDIR}/bench:ro", "-w", WORKDIR, "--entrypoint", "python3"]
    if gpus != "none":
        cmd += ["--gpus", gpus]
    if cpuset:
        cmd += ["--cpuset-cpus", cpuset]
    cmd += [arg for pair in env for arg in ("-e", pair)]
    return [*cmd, image, "-m", "bench", *modules]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks in the image; its exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--gpus", default="device=0", help="docker --gpus value, or none")
    parser.add_argument("--cpuset-cpus", default="0-3", help="the CPUs the benchmark may use (none: all)")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the container (repeat)")
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    args = parser.parse_args(argv)
    cpuset = None if args.cpuset_cpus == "none" else args.cpuset_cpus
    cmd = docker_command(args.docker, args.image, args.gpus, cpuset, args.env, args.modules)
    print(">> " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
