"""`python -m gtsrb.serve.predict` (`make predict`): predict image files and folders into a CSV.

One row per image file: its top class id, name and probability (and the next ones with
--top-k), or the reason it could not be read (the other files are still predicted). When the
input says the true classes (a labelled CSV, or a folder per class: gtsrb.serve.labels), each row
gets the true class and the command prints the accuracy. A CSV given as input names the images
to predict. Exit 0 when at least one image was predicted, 1 when none could be, 2 for a bad
model or no image files at all.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from gtsrb.common.failure import StepError
from gtsrb.common.progress import progress
from gtsrb.serve import labels
from gtsrb.serve.predictor import MAX_BATCH, ImageError, Predictor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".bmp")
EXIT_NONE_PREDICTED, EXIT_BAD_INPUT = 1, 2


def csv_fields(top_k: int, labelled: bool) -> list[str]:
    """The CSV's columns: rank 1 as class_id/class_name/probability, then rank k with a _k suffix."""
    ranks = [f"{name}{'' if k == 1 else f'_{k}'}" for k in range(1, top_k + 1) for name in ("class_id", "class_name", "probability")]
    return ["file", *ranks, *(["true_class_id", "true_class_name", "correct"] if labelled else []), "error"]


def image_files(paths: list[Path]) -> list[Path]:
    """The named files, every image file below the named folders, and the images a named CSV lists."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.suffix.lower() == ".csv" and path.is_file():
            listed = labels.read_csv(path)
            if listed is None:
                raise StepError(f"{path}: a CSV input needs a file column ({', '.join(labels.FILE_COLUMNS)}) "
                                f"and a class column ({', '.join(labels.LABEL_COLUMNS)}).")
            found += list(listed)
        else:
            found.append(path)
    return found


def predict_rows(predictor: Predictor, files: list[Path], top_k: int = 1) -> Iterator[dict]:
    """One CSV row per file, predicting readable images MAX_BATCH at a time."""
    for start in range(0, len(files), MAX_BATCH):
        rows, inputs, readable = [], [], []
        for path in files[start : start + MAX_BATCH]:
            row: dict = {"file": str(path)}
            try:
                inputs.append(predictor.image_input(path.read_bytes()))
                readable.append(row)
            except (OSError, ImageError) as err:
                row["error"] = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            rows.append(row)
        for row, probs in zip(readable, predictor.probabilities(inputs), strict=True):
            for rank, cls in enumerate(probs.argsort()[::-1][:top_k], start=1):
                suffix = "" if rank == 1 else f"_{rank}"
                row.update({f"class_id{suffix}": int(cls), f"class_name{suffix}": predictor.class_names[cls],
                            f"probability{suffix}": f"{probs[cls]:.6f}"})
        yield from rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command's flags."""
    parser = argparse.ArgumentParser(prog="python -m gtsrb.serve.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files, folders (searched recursively) and/or a labelled CSV")
    parser.add_argument("--model", required=True, help="model directory or model.tar.gz (make predict resolves models:/ URIs "
                        "and, without MODEL=, WORK's newest registered version first)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo/predictions.csv"), help="the CSV to write")
    parser.add_argument("--top-k", type=int, default=1, help="classes per image, most probable first (default 1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Predict every image into --out; print a one-line summary (and the accuracy when labelled)."""
    args = parse_args(argv)
    try:
        files = image_files(args.images)
        if not files:
            raise StepError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, args.images))}.")
        if args.out.is_dir():
            raise StepError(f"--out {args.out} is a folder; name the CSV file to write (make predict OUT={args.out / 'predictions.csv'}).")
        predictor = Predictor.load(Path(args.model))
        if not 1 <= args.top_k <= len(predictor.class_names):
            raise StepError(f"--top-k {args.top_k}: must be from 1 to {len(predictor.class_names)} (the model's classes).")
    except StepError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    truth = labels.true_classes(args.images, files, predictor.class_names)
    failed, scored, correct = 0, 0, 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, csv_fields(args.top_k, bool(truth)))
        writer.writeheader()
        for row in progress(predict_rows(predictor, files, args.top_k), total=len(files), unit="img", desc="predict"):
            failed += "error" in row
            true = truth.get(Path(row["file"]))
            if true is not None and "class_id" in row:
                row.update(true_class_id=true, true_class_name=predictor.class_names[true], correct=int(row["class_id"] == true))
                scored, correct = scored + 1, correct + row["correct"]
            writer.writerow(row)
    print(f"predicted {len(files) - failed} of {len(files)} images into {args.out}; {failed} could not be read")
    if scored:
        print(f"accuracy {correct / scored:.4f} ({correct} of {scored} images with a known true class)")
    return EXIT_NONE_PREDICTED if failed == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
