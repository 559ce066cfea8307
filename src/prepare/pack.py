"""Pack samples into RecordIO (.rec + .idx, and im2rec's .lst) with worker processes.

Records are written under `.partial` names; `publish` renames them only once every split has
passed its checks, so a failed run never leaves a .rec that looks finished.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from gtsrb.common.contract import RecordFiles, record_files
from gtsrb.common.failure import StepError
from gtsrb.common.progress import progress
from gtsrb.common.recordio_format import IndexedRecordWriter, image_record
from gtsrb.prepare.images import ImageOptions, Packed, pack_image
from gtsrb.prepare.layouts import Sample

PARTIAL = ".partial"


@dataclass
class SplitResult:
    """What went into one split's records, for the manifest and the checks."""

    split: str
    per_class: list[int]  # records per class id (every class of the data set, zeros included)
    tracks: set[str] = field(default_factory=set)
    skipped: list[dict] = field(default_factory=list)
    conversions: Counter = field(default_factory=Counter)
    upscaled: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Records written."""
        return sum(self.per_class)


def partial_files(folder: Path, split: str) -> RecordFiles:
    """The temporary names the split is written under."""
    final = record_files(folder, split)
    return RecordFiles(*(Path(str(p) + PARTIAL) for p in (final.rec, final.idx, final.lst)))


def _init_worker() -> None:
    """One OpenCV thread per worker process: the processes are the parallelism."""
    cv2.setNumThreads(1)


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes (fork: the samples need not be pickled twice).

    Not multiprocessing.Pool: when the OOM killer ends one of its workers, Pool replaces it and
    waits forever for the lost chunk; ProcessPoolExecutor raises BrokenProcessPool instead."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker)


def pack_split(
    samples: list[Sample], split: str, folder: Path, root: Path, options: ImageOptions, pool, num_classes: int
) -> SplitResult:
    """Pack `samples` in order into folder/split.*.partial; record what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    files = partial_files(folder, split)
    result = SplitResult(split, [0] * num_classes)
    writer = IndexedRecordWriter(files.idx, files.rec)
    lst = open(files.lst, "w")
    try:
        # Chunks of 32 small images amortise inter-process overhead and keep the bar moving.
        outcomes = pool.map(functools.partial(pack_image, options=options), samples, chunksize=32)
        for sample, packed in progress(zip(samples, outcomes, strict=True), total=len(samples), desc=f"pack {split}", unit="img"):
            _record(sample, packed, result, root)
            if packed.jpeg is None:
                continue
            index = result.count - 1
            writer.write_idx(index, image_record(sample.class_id, index, packed.jpeg))
            lst.write(f"{index}\t{sample.class_id}\t{_relative(sample.path, root)}\n")
    except OSError as err:
        err.filename = err.filename or str(folder)  # a full disk's error names no file
        raise
    except BrokenProcessPool as err:
        raise StepError(
            f"a packing worker process died while packing the {split} split (killed by the system, "
            "most often the out-of-memory killer); give the job more memory or fewer --workers."
        ) from err
    finally:
        writer.close()
        lst.close()
    return result


def _record(sample: Sample, packed: Packed, result: SplitResult, root: Path) -> None:
    """Account for one outcome in the split's result."""
    name = _relative(sample.path, root)
    if packed.sha1:
        result.hashes[name] = packed.sha1
    if packed.jpeg is None:
        result.skipped.append({"file": name, "split": result.split, "reason": packed.reason})
        return
    result.per_class[sample.class_id] += 1
    result.tracks.add(sample.track)
    result.sizes.append((packed.width, packed.height))
    result.upscaled += packed.upscaled
    if packed.conversion:
        result.conversions[packed.conversion] += 1


def _relative(path: Path, root: Path) -> str:
    """Path relative to the dataset root, as listed in the manifest and the .lst.

    String slicing, not Path.relative_to: this runs once per image in the writing process,
    which shares the CPUs with the workers (pathlib made it the slowest part of packing)."""
    full, prefix = str(path), str(root) + "/"
    return full[len(prefix):] if full.startswith(prefix) else full


def publish(folder: Path, split: str) -> RecordFiles:
    """Rename a split's partial files to their final names (atomic on one file system)."""
    final = record_files(folder, split)
    for tmp, dst in zip(partial_files(folder, split).__dict__.values(), final.__dict__.values(), strict=True):
        os.replace(tmp, dst)
    return final
