"""CLI: python -m gtsrb.demo_data --output DIR [--layout official|kaggle] [--seed S] ..."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from gtsrb.demo_data import writer as g


def main(argv: list[str] | None = None) -> None:
    """Write the demo dataset and say where and how big it is."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="gtsrb-demo-data", description="Write a synthetic GTSRB-like dataset.")
    parser.add_argument("--output", required=True, help="folder to write (the dataset root)")
    parser.add_argument("--layout", choices=(g.OFFICIAL, g.KAGGLE), default=g.OFFICIAL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracks-per-class", type=int, default=g.DEFAULT_TRACKS_PER_CLASS,
                        help="mean tracks per class (imbalanced like GTSRB)")
    parser.add_argument("--frames-per-track", type=int, default=g.DEFAULT_FRAMES_PER_TRACK)
    parser.add_argument("--test-per-class", type=int, default=g.DEFAULT_TEST_PER_CLASS)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if min(args.tracks_per_class, args.frames_per_track, args.test_per_class) < 1:
        parser.error("--tracks-per-class, --frames-per-track and --test-per-class must be at least 1")
    start = time.perf_counter()
    root = g.generate(args.output, args.layout, args.seed, args.tracks_per_class, args.frames_per_track, args.test_per_class, args.workers)
    images = sum(1 for p in root.rglob("*") if p.suffix in (".ppm", ".png") and "Meta" not in p.parts)
    logging.info("event=demo_data layout=%s images=%d seconds=%.1f output=%s", args.layout, images, time.perf_counter() - start, root)
    sys.exit(0)
