"""The pipeline's steps inside the CPU image, with the container paths SageMaker uses.

demo data -> prepare (processing layout) -> train (the toolkit's real `train` entry point on an
/opt/ml tree, no network) -> model.tar.gz -> evaluate (processing layout). One chain per session;
each test asserts on its artifacts. Needs `make test-containers`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.train.epoch_log import METRIC_DEFINITIONS
from gtsrb.train.hyperparameters import Hyperparameters
from pipelines import graph
from testkit.containers import REPO, docker_run, load_script

pytestmark = pytest.mark.containers

train_local = load_script("train_local")
SAMPLE = REPO.parent / "shared" / "data" / "gtsrb-sample"  # real GTSRB images (fallback)
TRAIN_HPS = {"preset": "cpu", "epochs": "1", "warmup_epochs": "0"}


@dataclass
class Chain:
    """Where each step of the chain left its outputs, and how it ended."""

    raw: Path
    prepared: Path
    job: Path
    evaluation: Path
    train_exit: int
    train_log: str


def raw_data(docker: str, image: str, out: Path) -> Path:
    """Tiny raw data: the demo generator run in the image, else the shared real GTSRB sample."""
    if importlib.util.find_spec("gtsrb.demo_data.__main__") is not None:
        demo = docker_run(docker, image, ["python3", "-m", "gtsrb.demo_data", "--output", "/out", "--seed", "0",
                                          "--tracks-per-class", "2", "--frames-per-track", "5", "--test-per-class", "5"],
                          {out: "/out"})  # ~800 images: seconds per step
        assert demo.returncode == 0, demo.stderr[-3000:]
        return out
    if not SAMPLE.is_dir():
        pytest.skip(f"no demo generator (gtsrb.demo_data) and no {SAMPLE}")
    return SAMPLE.resolve()


def prepare(docker: str, image: str, raw: Path, out: Path) -> None:
    """PrepareData as a processing job: raw data in, the split folders + manifest out."""
    size = Hyperparameters.from_mapping(TRAIN_HPS).image_size  # prepare packs for the train size
    result = docker_run(docker, image, [*graph.PREPARE.command(), "--image-size", str(size)],
                        {raw: f"{contract.PREPARE_INPUT}:ro", out: str(contract.PREPARE_OUTPUT)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def evaluate(docker: str, image: str, archive: Path, test_split: Path, out: Path) -> None:
    """EvaluateModel as a processing job: model.tar.gz + test split in, evaluation.json out."""
    result = docker_run(docker, image, graph.EVALUATE.command(), {
        archive.parent: f"{contract.EVALUATE_MODEL_INPUT}:ro", test_split: f"{contract.EVALUATE_TEST_INPUT}:ro",
        out: str(contract.EVALUATE_OUTPUT)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def chain(docker: str, image: str, tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """Run the whole chain once; later steps only run when the earlier ones worked."""
    root = tmp_path_factory.mktemp("chain")
    paths = Chain(root / "raw", root / "prepared", root / "job", root / "evaluation", -1, "")
    for folder in (paths.raw, paths.prepared, paths.evaluation):
        folder.mkdir()
    paths.raw = raw_data(docker, image, paths.raw)
    prepare(docker, image, paths.raw, paths.prepared)
    paths.train_exit = train_local.main([
        "--docker", docker, "--image", image, "--root", str(paths.job), "--gpus", "none",
        "--channel", f"train={paths.prepared / 'train'}", "--channel", f"validation={paths.prepared / 'validation'}",
        "--hp", *[f"{k}={v}" for k, v in TRAIN_HPS.items()]])
    paths.train_log = (paths.job / "job.log").read_text(errors="replace")
    if paths.train_exit == 0:
        evaluate(docker, image, paths.job / contract.MODEL_ARCHIVE, paths.prepared / "test", paths.evaluation)
    return paths


def test_prepare_writes_every_split_and_the_manifest(chain: Chain) -> None:
    for split in contract.SPLITS:
        files = contract.record_files(chain.prepared / split, split)
        assert files.rec.stat().st_size > 0 and files.idx.is_file(), split
    manifest = json.loads((chain.prepared / "manifest" / contract.MANIFEST_FILE).read_text())
    assert manifest


def test_training_through_the_toolkit_entry_point(chain: Chain) -> None:
    assert chain.train_exit == 0, chain.train_log[-4000:]
    assert not (chain.job / "output" / "failure").exists()
    model = chain.job / "model"
    for name in (contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE):
        assert (model / name).stat().st_size > 0, name
    assert (chain.job / contract.MODEL_ARCHIVE).stat().st_size > 0


def test_metric_definitions_match_the_jobs_stdout(chain: Chain) -> None:
    # SageMaker sees metrics only through these regexes on the job's stdout.
    for metric in METRIC_DEFINITIONS:
        values = re.findall(metric["Regex"], chain.train_log)
        assert values, f"{metric['Name']}: no match in the training log"
        float(values[-1])


def test_evaluation_report_from_the_trained_model(chain: Chain) -> None:
    assert chain.train_exit == 0, "training failed; see test_training_through_the_toolkit_entry_point"
    report = json.loads((chain.evaluation / contract.EVALUATION_FILE).read_text())
    accuracy = contract.json_get(report, contract.ACCURACY_JSON_PATH)
    test_list = contract.record_files(chain.prepared / "test", "test").lst
    records = len(test_list.read_text().splitlines())  # every packed test image, predicted once
    details = report["evaluation_details"]
    assert details["records"] == records > 0
    assert accuracy == pytest.approx(details["correct"] / records)
    for name in (contract.PER_CLASS_FILE, contract.CONFUSION_PNG):
        assert (chain.evaluation / name).stat().st_size > 0, name


def test_bad_hyperparameter_fails_the_job_with_a_reason(docker: str, image: str, chain: Chain,
                                                        tmp_path: Path) -> None:
    code = train_local.main([
        "--docker", docker, "--image", image, "--root", str(tmp_path), "--gpus", "none",
        "--channel", f"train={chain.prepared / 'train'}", "--channel", f"validation={chain.prepared / 'validation'}",
        "--hp", "preset=cpu", "epochs=-1"])
    assert code != 0
    failure = (tmp_path / "output" / "failure").read_text()
    assert "epochs" in failure.splitlines()[0]
    assert not any((tmp_path / "model").iterdir())
