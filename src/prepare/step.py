"""The prepare step: data folder -> track-aware split -> RecordIO per split + manifest.json.

Output (contract.py): {output}/{train,validation,test}/{split}.rec/.idx/.lst + classes.json and
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
from gtsrb.common.classes import write_class_names
from gtsrb.common.contract import MANIFEST_FILE, SPLITS
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import DEFAULT_IMAGE_SIZE, stored_size
from gtsrb.prepare import pack
from gtsrb.prepare.images import ImageOptions
from gtsrb.prepare.layouts import FOLDERS, Dataset, Sample, read_dataset
from gtsrb.prepare.split import split_train

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class PrepareOptions:
    """Parameters of the prepare step (each is also a --flag of the CLI)."""

    image_size: int = DEFAULT_IMAGE_SIZE  # network input; records are packed at stored_size() of it
    validation_fraction: float = 0.1  # share of each class's tracks held out (whole tracks)
    test_fraction: float = 0.2  # folder-per-class data without test/: share of each class's images held out for test
    seed: int = 0  # validation (and test) hold-out choice
    allow_missing_test_classes: bool = False  # accept a test split without some class; evaluation names them
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
            "test_fraction": 0.0 < self.test_fraction < 0.5,
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
    require_every_class(dataset.train, dataset.class_names, f"{dataset.root} (training set)")
    train, test = held_out_test(dataset, options)
    train, validation = split_train(train, options.validation_fraction, options.seed)
    splits = {contract.TRAIN_SPLIT: train, contract.VALIDATION_SPLIT: validation, contract.TEST_SPLIT: test}
    log.info("event=read layout=%s %s", dataset.layout, " ".join(f"{k}={len(v)}" for k, v in splits.items()))
    require_validation(validation, options.validation_fraction)
    output = Path(output_dir)
    image_options = ImageOptions(stored_size(options.image_size), options.roi_crop, options.roi_margin, options.quality)
    try:
        results = pack_all(splits, output, dataset.root, image_options, options.workers, len(dataset.class_names))
        check_results(results, splits, options.max_skipped_fraction, dataset.class_names)
        missing_test = check_test_classes(results[contract.TEST_SPLIT], splits[contract.TEST_SPLIT], dataset,
                                          options.allow_missing_test_classes)
        manifest = build_manifest(dataset, options, image_options, results, missing_test)
        staged = stage_manifest(manifest, output / contract.MANIFEST_OUTPUT)
        for split in SPLITS:
            pack.publish(output / split, split)
            write_class_names(output / split, dataset.class_names)  # travels with the split into every channel
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


def held_out_test(dataset: Dataset, options: PrepareOptions) -> tuple[list[Sample], list[Sample]]:
    """(training samples, test samples): a folder-per-class set without test/ gives a seeded,
    stratified share of each class's images to the test split; the other layouts have their own."""
    if dataset.test or dataset.layout != FOLDERS:
        return dataset.train, dataset.test
    train, test = split_train(dataset.train, options.test_fraction, options.seed, salt="test/")
    log.info("event=test_split_held_out fraction=%s images=%d (no test/ folder in %s)", options.test_fraction, len(test), dataset.root)
    return train, test


def class_list(ids: list[int], names: list[str], limit: int = 5) -> str:
    """`3 (cat), 7 (dog) ...`: the first `limit` classes by id and name."""
    text = ", ".join(f"{i} ({names[i]})" for i in ids[:limit])
    return text + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def require_every_class(samples: list[Sample], names: list[str], where: str) -> None:
    """A class with no annotated image cannot be learned: say which."""
    present = {s.class_id for s in samples}
    missing = [i for i in range(len(names)) if i not in present]
    if missing:
        raise StepError(f"{where}: no images of class {class_list(missing, names)}; every class needs training images.")


def pack_all(splits: dict, output: Path, root: Path, options: ImageOptions, workers: int, num_classes: int) -> dict:
    """Pack every split with one pool of worker processes."""
    with pack.make_pool(workers or len(os.sched_getaffinity(0))) as pool:
        return {name: pack.pack_split(samples, name, output / name, root, options, pool, num_classes)
                for name, samples in splits.items()}


def check_test_classes(result: pack.SplitResult, samples: list[Sample], dataset: Dataset, allow: bool) -> list[int]:
    """Classes without a test record: an error (what is missing, why it matters, what to do)
    unless allowed; returns their ids for the manifest."""
    empty = [i for i, n in enumerate(result.per_class) if n == 0]
    if not empty:
        return []
    listed = {s.class_id for s in samples}
    absent, unreadable = [i for i in empty if i not in listed], [i for i in empty if i in listed]
    names = dataset.class_names
    reasons = []
    if absent:
        reasons.append(f"the data lists no test image of class {class_list(absent, names)}")
    if unreadable:
        reasons.append(f"every test image of class {class_list(unreadable, names)} was unreadable ({skipped_examples(result)})")
    what = "; ".join(reasons)
    if allow:
        log.warning("event=missing_test_classes classes=%s: %s; allowed, the evaluation report names them as not scored",
                    ",".join(map(str, empty)), what)
        return empty
    raise StepError(
        f"the test split of {dataset.root} has no image of {len(empty)} class(es): {what}. The test accuracy "
        "would not measure those classes at all (a model that never predicts them would score the same), so "
        "the registration threshold would judge a partial model. Add test images of them, or accept it with "
        "allow_missing_test_classes=true (make demo HP='allow_missing_test_classes=true', or "
        "--allow-missing-test-classes); the evaluation report then names the classes it could not score."
    )


def skipped_examples(result: pack.SplitResult, limit: int = 3) -> str:
    """`a.ppm: empty file; b.ppm: ...`: what was skipped in a split, for a message."""
    return "; ".join(f"{e['file']}: {e['reason']}" for e in result.skipped[:limit]) or "none skipped"


def check_results(results: dict, splits: dict, max_skipped: float, names: list[str]) -> None:
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
        # validation holds whole tracks (tiny sets may miss a class); test: check_test_classes
        if empty and name == contract.TRAIN_SPLIT:
            raise StepError(
                f"the {name} split has no readable image of class {class_list(empty, names)} "
                f"({skipped_examples(result)}); every class needs training images."
            )


def build_manifest(
    dataset: Dataset, options: PrepareOptions, image_options: ImageOptions, results: dict, missing_test: list[int]
) -> dict:
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
        "class_names": list(dataset.class_names),  # also classes.json beside every split
        "missing_test_classes": missing_test,
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
