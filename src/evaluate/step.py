"""The evaluate step: load the model, predict every test record once, write the report.

Reads: a model directory or model.tar.gz (gtsrb.common.model_io) and a folder with test.rec/.idx.
Writes into the output folder: evaluation.json, per_class.csv, confusion_matrix.png and
misclassified.png. All four are written to a staging folder first and moved into place only when
everything succeeded, so a failed evaluation leaves no report a pipeline could mistake for one.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import mxnet as mx
import numpy as np

from gtsrb.common import contract, cuda
from gtsrb.common.classes import read_class_names
from gtsrb.common.failure import StepError
from gtsrb.common.model_io import LoadedModel, load_model
from gtsrb.common.records import check_records, predict
from gtsrb.evaluate import plots, report
from gtsrb.evaluate.metrics import confusion_matrix

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 128  # inference only: memory is no concern at GTSRB sizes


def default_context() -> mx.Context:
    """The first GPU when there is one, else the CPU."""
    return mx.gpu(0) if cuda.gpu_count() > 0 else mx.cpu()


def locate_test_split(test_dir: str | Path) -> contract.RecordFiles:
    """The test split's files, or a clear error when the folder is not a packed test split."""
    test_dir = Path(test_dir)
    if not test_dir.is_dir():
        raise StepError(f"{test_dir}: no such test folder; pass the prepare step's `test` output.")
    files = contract.record_files(test_dir, contract.TEST_SPLIT)
    if not files.rec.is_file():
        raise StepError(f"{test_dir} holds no {files.rec.name}; pass the prepare step's `test` output.")
    return files


def check_test_classes(files: contract.RecordFiles, model: LoadedModel) -> None:
    """The test split's classes (prepare's classes.json beside it) must be the model's, in order."""
    if not (files.rec.parent / contract.CLASSES_FILE).is_file():
        return  # a split packed by hand: the label range check below stands
    test_names = read_class_names(files.rec.parent)
    if test_names != model.class_names:
        raise StepError(
            f"{files.rec.parent / contract.CLASSES_FILE} lists {len(test_names)} classes that are not the "
            f"{len(model.class_names)} classes of {model.source}; evaluate a model trained on this data."
        )


def predict_all(
    model: LoadedModel, files: contract.RecordFiles, batch_size: int, ctx: mx.Context
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of every test record, checked against the model's classes."""
    try:
        labels, probs = predict(model.net, files, model.preprocessing, batch_size, ctx)
    except mx.base.MXNetError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StepError(
            f"{model.source} cannot predict {files.rec} at {model.preprocessing.image_size}px "
            f"({first_line}); the model and the test data do not fit together."
        ) from err
    if not np.isfinite(probs).all():
        raise StepError(
            f"{model.source} outputs NaN or infinite scores on {files.rec}; its weights are broken, "
            "re-run the train step."
        )
    if probs.shape[1] != len(model.class_names):
        raise StepError(
            f"{model.source}: the network has {probs.shape[1]} outputs but the model lists "
            f"{len(model.class_names)} class names; re-run the train step."
        )
    return labels, probs


def write_outputs(
    labels: np.ndarray, probs: np.ndarray, model: LoadedModel, files: contract.RecordFiles, sources: dict, folder: Path
) -> dict:
    """Write the four report files into `folder`; return the evaluation.json document."""
    predicted = probs.argmax(axis=1)
    names = model.class_names
    doc = report.build_report(labels, predicted, names, sources)
    report.validate_report(doc)
    report.write_per_class(labels, predicted, names, folder)
    plots.plot_confusion(confusion_matrix(labels, predicted, len(names)), names, folder / contract.CONFUSION_PNG)
    worst = plots.worst_misclassified(labels, probs)
    plots.plot_misclassified(
        plots.read_images(files, worst, labels),
        [int(labels[i]) for i in worst],
        [int(predicted[i]) for i in worst],
        [float(probs[i, predicted[i]]) for i in worst],
        names,
        folder / contract.MISCLASSIFIED_PNG,
    )
    report.write_report(doc, folder)  # last: its presence means the report is complete
    return doc


def publish(staging: Path, output_dir: Path) -> None:
    """Move the staged files into the output folder (same file system: each move is atomic)."""
    for name in (contract.PER_CLASS_FILE, contract.CONFUSION_PNG, contract.MISCLASSIFIED_PNG, contract.EVALUATION_FILE):
        (staging / name).replace(output_dir / name)


def evaluate(
    model_path: str | Path, test_dir: str | Path, output_dir: str | Path, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict:
    """Evaluate a trained model on the test split; write the report; return evaluation.json's content."""
    if batch_size < 1:
        raise StepError(f"--batch-size must be at least 1, got {batch_size}.")
    files = locate_test_split(test_dir)
    ctx = default_context()
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory(prefix="gtsrb-evaluate-") as work:
        model = load_model(model_path, ctx, Path(work) / "model")
        check_test_classes(files, model)
        check_records(files, len(model.class_names))  # a label that is no class or an undecodable image: a sentence
        labels, probs = predict_all(model, files, batch_size, ctx)
        log.info("event=predicted records=%d classes=%d", len(labels), probs.shape[1])
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output_dir))
        try:
            # tta: the test-time augmentation the scores were made with (the model's own setting)
            sources = {"model": str(model_path), "test": str(test_dir), "tta": model.preprocessing.tta}
            doc = write_outputs(labels, probs, model, files, sources, staging)
            publish(staging, output_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    block, extra = doc[contract.QUALITY_METRICS_KEY], doc[contract.EVALUATION_DETAILS_KEY]
    if extra["unscored_classes"]:
        log.warning("event=unscored_classes classes=%s: the test split has no image of these classes; "
                    "the accuracy does not measure them", ",".join(str(c["class_id"]) for c in extra["unscored_classes"]))
    log.info(
        "event=evaluated records=%d accuracy=%.6f accuracy_std=%.6f weighted_f1=%.6f macro_f1=%.6f tta=%s output=%s",
        extra["records"], block["accuracy"]["value"], block["accuracy"]["standard_deviation"],
        block["weighted_f1"]["value"], extra["macro_f1"], extra["tta"], output_dir,
    )
    return doc
