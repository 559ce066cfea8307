"""real-accuracy and real-time-to-accuracy: our whole pipeline on the real development set against
a plain MXNet reference, in one run (`make bench-real`; not in `make bench`, not in CI).

Ours: `python -m pipelines.local --data DATA` (what `make demo DATA=...` runs: prepare, the CPU
preset's train step, evaluate), timed end to end; its accuracy is evaluation.json's.
Reference: what a competent engineer writes in an afternoon: MXNet's own im2rec packs the images
(whole files, no ROI crop) at stored_size of the CPU preset's input (45 px for 40), mx.io.ImageRecordIter
feeds random crops of the input size, the bare CNN of bench.sample_accuracy trains with Adam for the same wall-clock seconds as
our whole pipeline took (its packing included), and is scored on the test set after every epoch.

Lines:
- `real-accuracy`: final test accuracies (ratio > 1: ours is more accurate in the same time).
- `real-time-to-accuracy` (seconds, lower is better): ours = our end-to-end seconds;
  reference = the seconds (packing included) until the reference first scored at least our
  accuracy, or its whole budget when it never did (then the ratio is an upper bound, said on
  stderr).
Skipped with one line when the data set is not beside the project. BENCH_REAL_DATA names another
set in the official layout (e.g. ../shared/data/gtsrb-sample for a quick smoke run) and
BENCH_REAL_HP adds `key=value` hyperparameters to ours (e.g. `epochs=1`).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mxnet as mx

from bench import report
from bench.sample_accuracy import HP, accuracy, train_bare
from gtsrb.common import contract
from gtsrb.common.preprocessing import Preprocessing, stored_size

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "gtsrb-dev"
IM2REC = Path(mx.__file__).parent / "tools" / "im2rec.py"
SEED = 1
IM2REC_WORKERS = 2


def data_root() -> Path:
    """The data set to measure on: BENCH_REAL_DATA, else ../shared/data/gtsrb-dev."""
    return Path(os.environ.get("BENCH_REAL_DATA", DEV)).resolve()


def extra_hyperparameters() -> list[str]:
    """`key=value` items of BENCH_REAL_HP, added to ours (e.g. `epochs=1` for a smoke run)."""
    return os.environ.get("BENCH_REAL_HP", "").split()


def run_ours(data: Path, work: Path) -> tuple[float, float]:
    """(end-to-end seconds, test accuracy) of the local pipeline on `data`."""
    extra = extra_hyperparameters()
    command = [sys.executable, "-m", "pipelines.local", "--data", str(data), "--work", str(work), "--no-cache",
               "--hp", f"seed={SEED}", *extra]
    print(f">> ours: {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    report_file = work / "evaluation" / contract.EVALUATION_FILE
    if not report_file.is_file():
        raise SystemExit(f"bench real_gtsrb: our pipeline failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds, float(contract.json_get(json.loads(report_file.read_text()), contract.ACCURACY_JSON_PATH))


def official_lists(data: Path, out: Path) -> tuple[Path, Path]:
    """im2rec .lst files (index, label, path relative to `data`) of the official layout's splits:
    out/train/train.lst and out/test/test.lst (where the shared scorer looks for test.rec)."""
    train, test = out / "train" / "train.lst", out / "test" / "test.lst"
    train.parent.mkdir(parents=True)
    test.parent.mkdir(parents=True)
    rows = []
    for gt in sorted(data.glob("GTSRB/Final_Training/Images/*/GT-*.csv")):
        with open(gt, newline="") as f:
            rows += [(str((gt.parent / r["Filename"]).relative_to(data)), int(r["ClassId"])) for r in csv.DictReader(f, delimiter=";")]
    train.write_text("".join(f"{i}\t{label}\t{path}\n" for i, (path, label) in enumerate(rows)))
    gt = data / "GTSRB" / "Final_Test" / "Images" / "GT-final_test.csv"
    with open(gt, newline="") as f:
        tests = [(str((gt.parent / r["Filename"]).relative_to(data)), int(r["ClassId"])) for r in csv.DictReader(f, delimiter=";")]
    test.write_text("".join(f"{i}\t{label}\t{path}\n" for i, (path, label) in enumerate(tests)))
    return train, test


def im2rec(lst: Path, data: Path, shuffle: bool) -> contract.RecordFiles:
    """Pack the images a .lst names with MXNet's im2rec (re-encoded JPEG q95) at the preset's stored size."""
    subprocess.run([sys.executable, str(IM2REC), str(lst.with_suffix("")), str(data), "--resize",
                    str(stored_size(HP.image_size)), "--center-crop", "--quality", "95", "--encoding", ".jpg",
                    "--num-thread", str(IM2REC_WORKERS), *([] if shuffle else ["--no-shuffle"])],
                   check=True, capture_output=True)
    return contract.RecordFiles(lst.with_suffix(".rec"), lst.with_suffix(".idx"), lst)


def run_reference(data: Path, work: Path, budget: float, target: float) -> tuple[float, float | None]:
    """(final test accuracy, seconds to first reach `target` or None) of the plain reference."""
    start = time.perf_counter()
    work.mkdir(parents=True)
    train_lst, test_lst = official_lists(data, work)
    train = im2rec(train_lst, data, shuffle=True)
    im2rec(test_lst, data, shuffle=False)
    prep = Preprocessing(image_size=HP.image_size)
    reached: list[float] = []
    scores: list[float] = []

    def score(net) -> None:
        scores.append(accuracy(net, work, prep))  # work/test/test.rec
        if scores[-1] >= target and not reached:
            reached.append(time.perf_counter() - start)
        print(f">> reference epoch={len(scores)} test_accuracy={scores[-1]:.4f} t={time.perf_counter() - start:.0f}s",
              file=sys.stderr, flush=True)

    remaining = budget - (time.perf_counter() - start)
    train_bare(train, prep, max(1.0, remaining), SEED, after_epoch=score)
    return (scores[-1] if scores else 0.0), (reached[0] if reached else None)


def run() -> None:
    """Print the two lines (or one skip line without the data)."""
    data = data_root()
    if not (data / "GTSRB" / "Final_Training" / "Images").is_dir():
        print(f"bench: real-accuracy skipped: no real GTSRB development set (official layout) at {data}", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        seconds, ours = run_ours(data, Path(tmp) / "ours")
        print(f">> ours: {seconds:.0f} s end to end, test accuracy {ours:.4f}", file=sys.stderr, flush=True)
        reference, reached = run_reference(data, Path(tmp) / "reference", seconds, ours)
    report("real-accuracy", ours, reference, "test_accuracy")
    if reached is None:
        print(f">> the reference never reached {ours:.4f} in {seconds:.0f} s: its time is a lower bound", file=sys.stderr, flush=True)
    report("real-time-to-accuracy", seconds, reached if reached is not None else seconds, "seconds")


if __name__ == "__main__":
    run()
