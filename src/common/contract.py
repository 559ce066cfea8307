"""File and path names that one step writes and another reads: each defined here, once.

The prepare step writes one folder per split; the train step reads two of them as the
SageMaker channels `train` and `validation`; the evaluate step reads the model and the `test`
folder and writes `evaluation.json`, whose accuracy the pipeline's condition reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gtsrb.common.sagemaker_job import OPT_ML

# --- prepare -> train / evaluate -------------------------------------------------------------
TRAIN_SPLIT, VALIDATION_SPLIT, TEST_SPLIT = "train", "validation", "test"
SPLITS: tuple[str, ...] = (TRAIN_SPLIT, VALIDATION_SPLIT, TEST_SPLIT)
MANIFEST_OUTPUT = "manifest"  # prepare's fourth output folder (beside one per split)
MANIFEST_FILE = "manifest.json"  # written by prepare into its MANIFEST_OUTPUT folder


@dataclass(frozen=True)
class RecordFiles:
    """The three files of one packed split inside its folder."""

    rec: Path
    idx: Path
    lst: Path


def record_files(split_dir: str | Path, split: str) -> RecordFiles:
    """Where the split `split` is packed inside `split_dir` (e.g. train/train.rec)."""
    base = Path(split_dir) / split
    return RecordFiles(rec=base.with_suffix(".rec"), idx=base.with_suffix(".idx"), lst=base.with_suffix(".lst"))


# --- SageMaker training channels (train step) -------------------------------------------------
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
PRETRAINED_CHANNEL = "pretrained"  # optional: a .params file with backbone weights
# The prepare split each data channel carries (the split's files keep the split's name).
CHANNEL_SPLITS: dict[str, str] = {TRAIN_CHANNEL: TRAIN_SPLIT, VALIDATION_CHANNEL: VALIDATION_SPLIT}

# --- train -> evaluate / registry: the model directory (SM_MODEL_DIR, then model.tar.gz) ------
MODEL_PREFIX = "model"  # HybridBlock.export(prefix) -> model-symbol.json, model-0000.params
SYMBOL_FILE = f"{MODEL_PREFIX}-symbol.json"
PARAMS_FILE = f"{MODEL_PREFIX}-0000.params"
CLASSES_FILE = "classes.json"
PREPROCESSING_FILE = "preprocessing.json"
HYPERPARAMETERS_FILE = "hyperparameters.json"
HISTORY_FILE = "history.json"
MODEL_ARCHIVE = "model.tar.gz"

# --- evaluate -> condition / registry ---------------------------------------------------------
EVALUATION_FILE = "evaluation.json"
PER_CLASS_FILE = "per_class.csv"
CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_PNG = "misclassified.png"
# The JSON path (JsonGet / dotted keys) of the accuracy inside evaluation.json, in SageMaker's
# model-quality format for multiclass classification.
QUALITY_METRICS_KEY = "multiclass_classification_metrics"
ACCURACY_JSON_PATH = f"{QUALITY_METRICS_KEY}.accuracy.value"
# Top-level key of evaluation.json for what SageMaker's format has no place for: record count,
# macro averages, the most confused class pairs (read by the local registry).
EVALUATION_DETAILS_KEY = "evaluation_details"

# --- the container layout SageMaker gives each step -------------------------------------------
PROCESSING_ROOT = Path(OPT_ML / "processing")
PREPARE_INPUT = PROCESSING_ROOT / "input" / "data"  # raw data: GTSRB (official or Kaggle layout) or train/<class>/ folders
PREPARE_OUTPUT = PROCESSING_ROOT / "output"  # + /train, /validation, /test, /manifest
EVALUATE_MODEL_INPUT = PROCESSING_ROOT / "model"  # model.tar.gz from the training step
EVALUATE_TEST_INPUT = PROCESSING_ROOT / "input" / "test"
EVALUATE_OUTPUT = PROCESSING_ROOT / "evaluation"


def json_get(document: dict, dotted_path: str):
    """Read `a.b.c` from a nested dict, as the pipeline's JsonGet does with ACCURACY_JSON_PATH."""
    value = document
    for key in dotted_path.split("."):
        value = value[key]
    return value
