"""Class names: how they travel from the data to the model (classes.json), and GTSRB's own table.

A data set's classes are decided once, by the prepare step (GTSRB's table for the two GTSRB
layouts, the folder names or `classes.json` for a folder-per-class set). Prepare writes them as
classes.json beside every split and into its manifest; the train step reads them from its
training channel and writes them into the model directory; evaluate, serve and the registry read
them from the model. No step after prepare assumes a number of classes.
"""

from __future__ import annotations

import json
from pathlib import Path

from gtsrb.common.contract import CLASSES_FILE
from gtsrb.common.failure import StepError

# GTSRB's official class names, indexed by ClassId (GTSRB "Meta" / the benchmark paper's sign
# list): the class names of the two GTSRB layouts and of the synthetic demo set, nothing else.
GTSRB_CLASS_NAMES: tuple[str, ...] = (
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
)
GTSRB_NUM_CLASSES: int = len(GTSRB_CLASS_NAMES)

# GTSRB classes that are mirror images of each other: a horizontal flip turns one into the other, so
# no step may ever use flip augmentation (the demo generator draws these pairs mirrored too).
MIRROR_PAIRS: tuple[tuple[int, int], ...] = ((19, 20), (33, 34), (36, 37), (38, 39))


def check_class_names(names: object, where: str | Path) -> list[str]:
    """`names` as a list of at least two distinct, non-empty strings, or a StepError naming `where`."""
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise StepError(f"{where}: expected a JSON list of class names (non-empty strings), e.g. [\"cat\", \"dog\"].")
    if len(names) < 2:
        raise StepError(f"{where}: a classifier needs at least two classes, found {len(names)}.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StepError(f"{where}: class name(s) {', '.join(map(repr, duplicates))} appear more than once.")
    return list(names)


def write_class_names(folder: str | Path, names: list[str]) -> Path:
    """Write classes.json (the class names in class-id order) into `folder`."""
    path = Path(folder) / CLASSES_FILE
    path.write_text(json.dumps(list(names), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_class_names(folder: str | Path, hint: str = "re-run the prepare step") -> list[str]:
    """The class names in `folder`/classes.json, checked; a StepError saying what to do otherwise."""
    path = Path(folder) / CLASSES_FILE
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StepError(f"{path} is missing: the class names travel with the data; {hint}.") from None
    except (OSError, ValueError) as err:
        raise StepError(f"{path}: not readable JSON ({err}); {hint}.") from err
    return check_class_names(names, path)
