"""The prepare step: GTSRB folder -> track-aware split -> RecordIO per split + manifest.json.

Output (contract.py): {output}/{train,validation,test}/{split}.rec/.idx/.lst and
{output}/manifest/manifest.json. Nothing keeps its final name unless every check passed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gtsrb.common import contract
from gtsrb.common.classes import CLASS_NAMES
from gtsrb.common.contract import MANIFEST_FILE, SPLITS
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import DEFAULT_IMAGE_SIZE, stored_size
from gtsrb.prepare import pack
from gtsrb.prepare.images import ImageOptions
from gtsrb.prepare.layouts import Dataset, Sample, read_dataset
from gtsrb.prepare.split import split_train

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PrepareOptions:
    """Parameters of the prepare step (each is also a --flag of the CLI)."""

    image_size: int = DEFAULT_IMAGE_SIZE  # network input; records are packed at stored_size() of it
    validation_fraction: float = 0.1  # share of each class's tracks held out (whole tracks)
    seed: int = 0  # validation track choice
    roi_crop: bool = True  # crop to the annotated sign: GTSRB images have a ~10% border
    roi_margin: float = 0.1  # keep 10% around the sign, so random crops never cut it
    max_skipped_fraction: float = 0.01  # fail when more unreadable images than this are skipped
    workers: int = 0  # packing processes; 0 = one per CPU
    quality: int = 95  # JPEG quality of the packed images

    def check(self) -> None:
        """Fail at once, naming the option, on values that cannot work."""
        rules = {
            "image_size": 8 <= self.image_size <= 1024,
            "validation_fraction": 0.0 <= self.validation_fraction < 0.5,
            "roi_margin": 0.0 <= self.roi_margin <= 1.0,
            "max_skipped_fraction": 0.0 <= self.max_skipped_fraction <= 1.0,
            "workers": self.workers >= 0,
            "quality": 1 <= self.quality <= 100,
        }
        for name, ok in rules.items():
            if not ok:
                raise StepError(f"prepare option {name}={getattr(self, name)!r} is out of range.")


def prepare(input_dir: str | Path, output_dir: str | Path, options: PrepareOptions = PrepareOptions()) -> dict:
    """Read, split, pack and check; return the manifest (also written to manifest/manifest.json)."""
    options.check()
    dataset = read_dataset(input_dir)
    require_every_class(dataset.train, f"{dataset.root} (training set)")
    train, validation = split_train(dataset.train, options.validation_fraction, options.seed)
    splits = {contract.TRAIN_SPLIT: train, contract.VALIDATION_SPLIT: validation, contract.TEST_SPLIT: dataset.test}
    log.info("event=read layout=%s %s", dataset.layout, " ".join(f"{k}={len(v)}" for k, v in splits.items()))
    require_validation(validation, options.validation_fraction)
    output = Path(output_dir)
    image_options = ImageOptions(stored_size(options.image_size), options.roi_crop, options.roi_margin, options.quality)
    try:
        results = pack_all(splits, output, dataset.root, image_options, options.workers)
        check_results(results, splits, options.max_skipped_fraction)
        manifest = build_manifest(dataset, options, image_options, results)
        staged = stage_manifest(manifest, output / contract.MANIFEST_OUTPUT)
        for split in SPLITS:
            pack.publish(output / split, split)
        os.replace(staged, output / contract.MANIFEST_OUTPUT / MANIFEST_FILE)  # last: its presence means complete
    except OSError as err:
        discard_all(output)
        raise StepError(
            f"{err.filename or output}: cannot write the prepared data ({err.strerror or err}); "
            "check that the output folder is writable and has free space."
        ) from err
    except BaseException:
        discard_all(output)
        raise
    log_manifest(manifest, output / contract.MANIFEST_OUTPUT / MANIFEST_FILE)
    return manifest


def discard_all(output: Path) -> None:
    """Remove every partial file of a failed run (splits and manifest), as far as the folder allows."""
    partials = [p for split in SPLITS for p in pack.partial_files(output / split, split).__dict__.values()]
    for path in [*partials, output / contract.MANIFEST_OUTPUT / (MANIFEST_FILE + pack.PARTIAL)]:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # e.g. the output is a file, not a folder: nothing was written there
            pass


def require_validation(validation: list[Sample], fraction: float) -> None:
    """Training needs a validation split: say why there is none instead of a misleading later error."""
    if not validation:
        raise StepError(
            f"no validation images: --validation-fraction {fraction} holds out no whole track of any class "
            "(a class needs at least two tracks to give one away); use a fraction above 0 on data with "
            "several tracks per class."
        )


def require_every_class(samples: list[Sample], where: str) -> None:
    """A class with no annotated image cannot be learned: say which."""
    present = {s.class_id for s in samples}
    missing = [i for i in range(len(CLASS_NAMES)) if i not in present]
    if missing:
        names = ", ".join(f"{i} ({CLASS_NAMES[i]})" for i in missing[:5])
        raise StepError(f"{where}: no images of class {names}{' ...' if len(missing) > 5 else ''}; all 43 are needed.")


def pack_all(splits: dict, output: Path, root: Path, options: ImageOptions, workers: int) -> dict:
    """Pack every split with one pool of worker processes."""
    with pack.make_pool(workers or len(os.sched_getaffinity(0))) as pool:
        return {name: pack.pack_split(samples, name, output / name, root, options, pool) for name, samples in splits.items()}


def check_results(results: dict, splits: dict, max_skipped: float) -> None:
    """Fail when too much was skipped, or a split or a class of train/test ended up empty."""
    skipped = [entry for r in results.values() for entry in r.skipped]
    total = sum(len(s) for s in splits.values())
    if total and len(skipped) / total > max_skipped:
        examples = "; ".join(f"{e['file']}: {e['reason']}" for e in skipped[:3])
        raise StepError(
            f"{len(skipped)} of {total} images could not be read ({examples}); that is more than "
            f"--max-skipped-fraction {max_skipped}. Fix or remove those files, or raise the limit."
        )
    for name, result in results.items():
        if result.count == 0:
            raise StepError(f"the {name} split is empty after skipping unreadable images; check the input data.")
        empty = [i for i, n in enumerate(result.per_class) if n == 0]
        if empty and name != contract.VALIDATION_SPLIT:  # validation holds whole tracks: tiny sets may miss a class
            raise StepError(f"the {name} split has no readable image of class {empty[0]} ({CLASS_NAMES[empty[0]]}).")


def build_manifest(dataset: Dataset, options: PrepareOptions, image_options: ImageOptions, results: dict) -> dict:
    """Counts per class per split, parameters, image statistics, skipped files, input hash."""
    sizes = np.array([s for r in results.values() for s in r.sizes])
    written = sum(r.count for r in results.values())
    upscaled = sum(r.upscaled for r in results.values())
    return {
        "manifest_version": MANIFEST_VERSION,
        "layout": dataset.layout,
        "input": str(dataset.root),
        "input_sha256": input_hash(dataset, results),
        "parameters": {**asdict(options), "stored_size": image_options.stored_size},
        "class_names": list(CLASS_NAMES),
        "counts": {name: {"total": r.count, "tracks": len(r.tracks), "per_class": r.per_class} for name, r in results.items()},
        "image_size": {
            "width": _stats(sizes[:, 0]),
            "height": _stats(sizes[:, 1]),
            "upscaled": upscaled,
            "upscaled_share": round(upscaled / written, 4),
        },
        "converted": dict(sum((r.conversions for r in results.values()), start=pack.Counter())),
        "skipped": [entry for r in results.values() for entry in r.skipped],
    }


def _stats(values: np.ndarray) -> dict:
    return {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}


def input_hash(dataset: Dataset, results: dict) -> str:
    """SHA-256 over the annotation files and every image's SHA-1, by relative path."""
    digest = hashlib.sha256()
    for path in sorted(dataset.annotation_files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    hashes = {name: sha for r in results.values() for name, sha in r.hashes.items()}
    for name in sorted(hashes):
        digest.update(f"{name}\0{hashes[name]}\n".encode())
    return digest.hexdigest()


def stage_manifest(manifest: dict, folder: Path) -> Path:
    """Write manifest.json under its partial name; `prepare` renames it after the splits."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MANIFEST_FILE + pack.PARTIAL)
    try:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    except OSError as err:
        err.filename = err.filename or str(tmp)  # a full disk's error names no file
        raise
    return tmp


def log_manifest(manifest: dict, path: Path) -> None:
    """Log what a person should know about the prepared data."""
    counts = " ".join(f"{k}={v['total']}" for k, v in manifest["counts"].items())
    log.info("event=prepared %s skipped=%d manifest=%s", counts, len(manifest["skipped"]), path)
    share = manifest["image_size"]["upscaled_share"]
    if share:  # expected (GTSRB's signs are 15-250 px): a fact for the log, not a warning to act on
        log.info(
            "event=upscaled images=%d share=%.1f%% stored_size=%d median=%gx%g note=smaller_images_are_resized_up",
            manifest["image_size"]["upscaled"], 100 * share, manifest["parameters"]["stored_size"],
            manifest["image_size"]["width"]["median"], manifest["image_size"]["height"]["median"],
        )
