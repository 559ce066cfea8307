"""`python -m gtsrb.serve.predict` (`make predict`): predict image files and folders into a CSV.

One row per image file: its top class id, name and probability, or the reason it could not be
read (the other files are still predicted). Exit 0 when at least one image was predicted, 1 when
none could be, 2 for a bad model or no image files at all.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from gtsrb.common.failure import StepError
from gtsrb.serve.predictor import MAX_BATCH, ImageError, Predictor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pnm", ".bmp")
CSV_FIELDS = ("file", "class_id", "class_name", "probability", "error")
EXIT_NONE_PREDICTED, EXIT_BAD_INPUT = 1, 2


def image_files(paths: list[Path]) -> list[Path]:
    """The named files, plus every image file below the named folders (sorted)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(path)
    return found


def predict_rows(predictor: Predictor, files: list[Path]) -> Iterator[dict]:
    """One CSV row per file, predicting readable images MAX_BATCH at a time."""
    for start in range(0, len(files), MAX_BATCH):
        rows, inputs, readable = [], [], []
        for path in files[start : start + MAX_BATCH]:
            row = {"file": str(path)}
            try:
                inputs.append(predictor.image_input(path.read_bytes()))
                readable.append(row)
            except (OSError, ImageError) as err:
                row["error"] = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            rows.append(row)
        for row, probs in zip(readable, predictor.probabilities(inputs), strict=True):
            best = int(probs.argmax())
            row.update(class_id=best, class_name=predictor.class_names[best], probability=f"{probs[best]:.6f}")
        yield from rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command's flags."""
    parser = argparse.ArgumentParser(prog="python -m gtsrb.serve.predict", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", required=True, help="model directory or model.tar.gz (make predict resolves models:/ URIs first)")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"), help="the CSV to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Predict every image into --out; print a one-line summary."""
    args = parse_args(argv)
    files = image_files(args.images)
    try:
        if not files:
            raise StepError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, args.images))}.")
        predictor = Predictor.load(Path(args.model))
    except StepError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args.out.parent.mkdir(parents=True, exist_ok=True)
    failed = 0
    with open(args.out, "w", newline="") as out:
        writer = csv.DictWriter(out, CSV_FIELDS)
        writer.writeheader()
        for row in tqdm(predict_rows(predictor, files), total=len(files), unit="img", desc="predict"):
            writer.writerow(row)
            failed += "error" in row
    print(f"predicted {len(files) - failed} of {len(files)} images into {args.out}; {failed} could not be read")
    return EXIT_NONE_PREDICTED if failed == len(files) else 0


if __name__ == "__main__":
    sys.exit(main())
