"""Validation split by whole tracks, stratified by class, seeded.

GTSRB's ~30 frames of a track show one physical sign: a random row split would put
near-duplicates on both sides and overstate validation accuracy.
"""

from __future__ import annotations

import random
from collections import defaultdict

from gtsrb.prepare.layouts import Sample


def tracks_by_class(samples: list[Sample]) -> dict[int, list[str]]:
    """Sorted track names of each class."""
    tracks: dict[int, set[str]] = defaultdict(set)
    for s in samples:
        tracks[s.class_id].add(s.track)
    return {class_id: sorted(names) for class_id, names in tracks.items()}


def validation_tracks(samples: list[Sample], fraction: float, seed: int, salt: str = "") -> set[str]:
    """Tracks held out for validation: about `fraction` of each class's tracks, at least one
    when the class has two or more (so every class is validated), never all of them."""
    chosen: set[str] = set()
    for class_id, tracks in sorted(tracks_by_class(samples).items()):
        if len(tracks) < 2 or fraction <= 0:
            continue
        count = min(len(tracks) - 1, max(1, round(fraction * len(tracks))))
        rng = random.Random(f"{salt}{seed}/{class_id}")  # per class: adding a class changes no other
        chosen.update(rng.sample(tracks, count))
    return chosen


def split_train(samples: list[Sample], fraction: float, seed: int, salt: str = "") -> tuple[list[Sample], list[Sample]]:
    """(train, held out) with no track on both sides; `salt` draws another hold-out from the same seed
    (the test split of a folder-per-class set without test/, before the validation split)."""
    held_out = validation_tracks(samples, fraction, seed, salt)
    train = [s for s in samples if s.track not in held_out]
    validation = [s for s in samples if s.track in held_out]
    return train, validation
