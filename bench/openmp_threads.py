"""The train loop with one OpenMP thread per physical core against MXNet's own default.

`train-openmp-threads`: images/s of the CPU preset's real training loop (bench.train_loop's records
and loop) in a fresh process that imports the train step as its entry points do (OMP_NUM_THREADS
unset: gtsrb.common.openmp_threads sets one thread per physical core), against the same loop in a
process given what MXNet 1.9.1 itself picks on x86 when the variable is unset: half the CPUs. On a
machine whose CPUs are all cores (this project's 2-core machines) the ratio is the speed-up of
using them (~1.5); with two hardware threads per core both runs use the same count (ratio ~1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import QUICK, report

ROUNDS = 1 if QUICK else 3  # timed epochs per process, best of them


def child_rate() -> float:
    """In the child: the best images/s of ROUNDS epochs of the CPU preset's loop (after a warm-up)."""
    import gtsrb.train  # noqa: F401  first, as the step's entry points: it sets the threads before MXNet loads
    from bench.train_loop import HP, RECORDS, photographs, write_split
    from gtsrb.common import contract
    from gtsrb.common.preprocessing import stored_size
    from gtsrb.train.checkpoint import TrainingState
    from gtsrb.train.environment import Environment
    from gtsrb.train.loop import train_epoch
    from gtsrb.train.step import prepare_run

    with tempfile.TemporaryDirectory(prefix="bench-omp-") as tmp:
        root = Path(tmp)
        pool = photographs(stored_size(HP.image_size))
        for split, count in ((contract.TRAIN_CHANNEL, RECORDS), (contract.VALIDATION_CHANNEL, 64)):
            write_split(root / split, split, count, pool)
        env = Environment(root / contract.TRAIN_CHANNEL, root / contract.VALIDATION_CHANNEL, None, root / "model", root / "ckpt", 0)
        loop = prepare_run(env, HP)
        train_epoch(loop, TrainingState(), epoch=0)  # warm-up: graph building, allocation
        rates = [train_epoch(loop, TrainingState(), epoch=e) for e in range(1, 1 + ROUNDS)]
        return max(s["images"] / s["seconds"] for s in rates)


def rate_in_fresh_process(omp_threads: str | None) -> float:
    """child_rate() in a new interpreter with OMP_NUM_THREADS set to `omp_threads` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp_threads is not None:
        env["OMP_NUM_THREADS"] = omp_threads
    done = subprocess.run([sys.executable, "-m", "bench.openmp_threads", "--child"], env=env, capture_output=True,
                          text=True, timeout=900, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def run() -> None:
    """Our default (variable unset) against MXNet's x86 default (half the CPUs): alternated, best of each."""
    mxnet_default = str(max(1, len(os.sched_getaffinity(0)) // 2))
    ours = reference = 0.0
    for _ in range(1 if QUICK else 2):
        ours = max(ours, rate_in_fresh_process(None))
        reference = max(reference, rate_in_fresh_process(mxnet_default))
    report("train-openmp-threads", ours, reference, "img/s")


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        import logging

        logging.disable(logging.INFO)  # stdout carries only the rate
        print(child_rate(), flush=True)
    else:
        run()
