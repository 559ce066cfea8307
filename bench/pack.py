"""pack-vs-im2rec: our prepare step against MXNet's tools/im2rec.py on the same images.

Same images (the real sample if it is beside the project, else generated demo data), same
output (JPEG q95 squares of the same side, whole images: no ROI crop), same number of worker
processes, both timed as commands (interpreter start and imports included). Throughput is images per
second over the whole command, best of two runs each.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mxnet

from bench import report
from gtsrb.common.contract import MANIFEST_FILE, SPLITS
from gtsrb.common.preprocessing import stored_size

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "gtsrb-sample"
IMAGE_SIZE = 32
WORKERS = 2
REPEAT = 4
IM2REC = Path(mxnet.__file__).parent / "tools" / "im2rec.py"


def dataset(tmp: Path) -> Path:
    """The real sample replicated REPEAT times (so per-image work, not start-up, dominates as it
    does on the 51,839 real images), or generated demo data when the sample is absent."""
    if not SAMPLE.is_dir():
        from gtsrb.demo_data.writer import generate

        return generate(tmp / "demo", seed=0, tracks_per_class=8, frames_per_track=30)
    root = tmp / "sample-x4" / "GTSRB"
    for src_csv in sorted(SAMPLE.glob("GTSRB/Final_*/Images/**/GT-*.csv")):
        folder = root / src_csv.parent.relative_to(SAMPLE / "GTSRB")
        folder.mkdir(parents=True)
        header, *rows = src_csv.read_text().splitlines()
        copies = [header]
        for k in range(REPEAT):
            for row in rows:
                name, rest = row.split(";", 1)
                new = f"{k}{name}"  # TTTTT_FFFFF -> kTTTTT_FFFFF: a new track per copy
                (folder / new).symlink_to(src_csv.parent / name)
                copies.append(f"{new};{rest}")
        (folder / src_csv.name).write_text("\n".join(copies) + "\n")
    return root.parent


def time_ours(data: Path, out: Path) -> tuple[float, int]:
    """Seconds and image count of one prepare run, as a command like im2rec (imports included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gtsrb.prepare", "--input", str(data), "--output", str(out), "--image-size",
         str(IMAGE_SIZE), "--no-roi-crop", "--workers", str(WORKERS), "--quality", "95"],
        check=True, capture_output=True,
    )
    seconds = time.perf_counter() - start
    manifest = json.loads((out / "manifest" / MANIFEST_FILE).read_text())
    return seconds, sum(c["total"] for c in manifest["counts"].values())


def time_im2rec(root: Path, lst: Path) -> float:
    """Seconds of one im2rec run packing the images listed in `lst` (paths relative to root)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(IM2REC), str(lst.with_suffix("")), str(root), "--resize", str(stored_size(IMAGE_SIZE)),
         "--center-crop", "--quality", "95", "--num-thread", str(WORKERS), "--encoding", ".jpg"],
        check=True, capture_output=True,
    )
    return time.perf_counter() - start


def run() -> None:
    """Print the pack-vs-im2rec line."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = dataset(tmp)
        ours = [time_ours(data, tmp / f"ours{i}") for i in range(2)]
        count = ours[0][1]
        # im2rec packs from a .lst: use ours (index, label, path relative to the layout root)
        root = data / "GTSRB" if (data / "GTSRB").is_dir() else data
        lst = tmp / "all.lst"
        rows = [line.split("\t") for s in SPLITS for line in (tmp / "ours0" / s / f"{s}.lst").read_text().splitlines()]
        lst.write_text("".join(f"{i}\t{label}\t{path}\n" for i, (_, label, path) in enumerate(rows)))
        reference = [time_im2rec(root, lst) for _ in range(2)]
    report("pack-vs-im2rec", count / min(s for s, _ in ours), count / min(reference), "img/s")
