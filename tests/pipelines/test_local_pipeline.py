"""End to end: `python -m pipelines.local` on a small generated set and on the real GTSRB sample.

Each run is the real command in a subprocess (the real step CLIs below it, the real MLflow
registry under WORK). One small pipeline run is shared by the tests; the others copy its WORK
folder, which also proves that step reuse does not depend on where WORK is.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gtsrb.common import contract
from pipelines import graph
from pipelines.deploy import local_twin
from pipelines.local import cli
from pipelines.local import mlflow_registry as registry
from pipelines.local.cache import hash_tree
from pipelines.local.options import DEMO_STEP

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO.parent / "shared" / "data" / "gtsrb-sample"
# Fast settings: a few small tracks per class, the CPU preset's net at 32 px (its default is 40) for a few epochs.
DEMO_SIZE = ("8", "4", "5")  # tracks per class, frames per track, test images per class
EPOCHS = 5
FAST_HP = (f"epochs={EPOCHS}", "image_size=32")  # 32 px: the threshold below was measured there
THRESHOLD = 0.06  # ~2.5x chance (1/43 = 0.023); these settings reach ~0.15 in ~35 s of training
IMPOSSIBLE = 1.01


def run_local(work: Path, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    """The runner as `make demo` calls it; output captured for assertions."""
    argv = [sys.executable, "-m", "pipelines.local", "--work", str(work), *args]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")  # shown when a test fails
    return result


def copy_work(work: Path, target: Path) -> Path:
    """A copy of a finished WORK folder without its registration marker (its MLflow store lives
    beside WORK and is not copied: a copy elsewhere is another store)."""
    shutil.copytree(work, target)
    (target / "steps" / f"{graph.REGISTER}.json").unlink()
    return target


def registered_work(tmp_path: Path) -> Path:
    """A finished, registered run of its own (WORK and the store beside it), for tests that change
    the registry: the step key names the store, so a copied WORK would register anew."""
    work = tmp_path / "work"
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """The default path (demo data generated into WORK/data) with fast settings."""
    work = tmp_path_factory.mktemp("local") / "work"
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    return work, result


def test_every_step_writes_its_artifacts(first_run) -> None:
    work, result = first_run
    assert result.returncode == 0, result.stderr
    assert (work / "data" / "GTSRB").is_dir()  # the generated demo set
    mxnet_line = "ImageRecordIOParser2"  # MXNet's C++ log: in the step's log, not on the console
    assert mxnet_line in (work / "steps" / f"{graph.TRAIN.name}.log").read_text() and mxnet_line not in result.stdout
    for split in contract.SPLITS:
        files = contract.record_files(work / "prepare" / split, split)
        assert files.rec.stat().st_size > 0 and files.idx.stat().st_size > 0 and files.lst.is_file()
    manifest = json.loads((work / "prepare" / "manifest" / contract.MANIFEST_FILE).read_text())
    counts = {split: manifest["counts"][split]["total"] for split in contract.SPLITS}
    assert all(n > 0 for n in counts.values()), counts
    assert f"data        {' · '.join(f'{s} {n}' for s, n in counts.items())} images" in result.stdout  # the summary
    model_dir = work / "train" / "model"
    for name in (contract.SYMBOL_FILE, contract.PARAMS_FILE, contract.CLASSES_FILE, contract.PREPROCESSING_FILE, contract.HISTORY_FILE):
        assert (model_dir / name).is_file(), name
    history = json.loads((model_dir / contract.HISTORY_FILE).read_text())
    assert len(history) == EPOCHS and json.loads((model_dir / contract.PREPROCESSING_FILE).read_text())["image_size"] == 32
    assert (work / "train" / contract.MODEL_ARCHIVE).stat().st_size > 0
    assert any((work / "train" / "checkpoints").iterdir())
    for name in contract.EVALUATION_OUTPUTS:
        assert (work / "evaluation" / name).stat().st_size > 0, name
    table = work / "evaluation" / contract.PREDICTIONS_FILE
    assert "predictions " in result.stdout and str(contract.PREDICTIONS_FILE) in result.stdout  # named in the summary
    assert len(table.read_text().splitlines()) == 1 + json.loads((work / "evaluation" / contract.EVALUATION_FILE).read_text())[
        contract.EVALUATION_DETAILS_KEY]["records"]
    accuracy = contract.json_get(json.loads((work / "evaluation" / contract.EVALUATION_FILE).read_text()), contract.ACCURACY_JSON_PATH)
    assert accuracy >= THRESHOLD


def test_the_model_is_registered_with_its_metrics(first_run) -> None:
    work, result = first_run
    report = json.loads((work / "evaluation" / contract.EVALUATION_FILE).read_text())
    versions = registry.find_versions(work)
    assert [str(v.version) for v in versions] == ["1"]
    version = versions[0]
    assert version.tags[registry.APPROVAL_TAG] == graph.APPROVAL_STATUS == "PendingManualApproval"
    assert version.source.startswith("models:/m-")  # the logged pyfunc model
    client = registry.open_client(work)
    run = client.get_run(version.run_id)
    assert run.data.metrics["test_accuracy"] == pytest.approx(contract.json_get(report, contract.ACCURACY_JSON_PATH))
    assert run.data.metrics["test_macro_f1"] == pytest.approx(report[contract.EVALUATION_DETAILS_KEY]["macro_f1"])
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["preset"] == "cpu"
    assert run.data.params["model"] == "gtsrb_cnn" and "label_smoothing" in run.data.params  # resolved, not only HP=
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == list(range(1, EPOCHS + 1))
    artifacts = {a.path for d in ("model", "evaluation", "data", "training") for a in client.list_artifacts(run.info.run_id, d)}
    assert "training/training_curves.png" in artifacts
    assert f"model/{contract.MODEL_ARCHIVE}" in artifacts and "data/manifest.json" in artifacts
    assert {f"evaluation/{n}" for n in (contract.EVALUATION_FILE, contract.PER_CLASS_FILE, contract.CONFUSION_PNG)} <= artifacts
    # the summary: data counts, accuracy, macro-F1, time per step, the registration outcome
    out = result.stdout
    for step in (DEMO_STEP, *graph.STEP_ORDER, graph.REGISTER):
        assert f"==> {step}" in out
    assert f"accuracy    {contract.json_get(report, contract.ACCURACY_JSON_PATH):.4f}" in out and "macro-F1" in out
    assert f"{graph.MODEL_PACKAGE_GROUP} version 1 (PendingManualApproval)" in out


def test_a_rerun_reuses_every_step_and_registers_nothing_new(first_run) -> None:
    work, _ = first_run
    before = {p: p.stat().st_mtime_ns for p in (work / "train" / contract.MODEL_ARCHIVE, work / "evaluation" / contract.EVALUATION_FILE)}
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("reusing the finished step") == 5  # demo data, prepare, train, evaluate, register
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert len(registry.find_versions(work)) == 1
    # the summary of a reused registration shows the version's approval status now, not at registration
    local_twin.approve(work, "1")
    again = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert f"{graph.MODEL_PACKAGE_GROUP} version 1 ({graph.APPROVED})" in again.stdout


def test_an_impossible_threshold_fails_and_registers_nothing(first_run, tmp_path: Path) -> None:
    work = copy_work(first_run[0], tmp_path / "work")
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(IMPOSSIBLE), "--hp", *FAST_HP)
    assert result.returncode == cli.EXIT_BELOW_THRESHOLD
    assert f"threshold {IMPOSSIBLE}" in result.stdout and "NOT registered (accuracy below the threshold)" in result.stdout
    assert result.stderr.count("the model was not registered") == 1  # the message once, with the exit code
    assert f"Exit code {cli.EXIT_BELOW_THRESHOLD}." in result.stderr
    assert result.stdout.count("reusing the finished step") == 4  # the copied WORK is reused as is
    assert registry.find_versions(work) == [] and not registry.default_db(work).exists()


def test_an_interrupted_training_resumes_from_its_checkpoints(first_run, tmp_path: Path) -> None:
    work = copy_work(first_run[0], tmp_path / "work")
    (work / "steps" / f"{graph.TRAIN.name}.json").unlink()
    shutil.rmtree(work / "train")  # a fresh training job, interrupted after its first epoch
    argv = [sys.executable, "-m", "pipelines.local", "--work", str(work), "--demo-size", *DEMO_SIZE,
            "--threshold", str(THRESHOLD), "--hp", *FAST_HP]
    with (tmp_path / "first.log").open("w") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not list((work / "train" / "checkpoints").glob("step-0001-*")):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)  # as `kill` or a spot interruption would
        assert proc.wait(timeout=120) == cli.EXIT_INTERRUPTED
    assert "Run the same command again" in (tmp_path / "first.log").read_text()
    assert not (work / "steps" / f"{graph.TRAIN.name}.json").exists()
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0, result.stderr
    assert "resuming from the checkpoints" in result.stdout and "event=resume" in result.stdout
    assert "epoch=1/" not in result.stdout  # the finished epoch is not trained again
    assert len(json.loads((work / "train" / "model" / contract.HISTORY_FILE).read_text())) == EPOCHS
    assert [str(v.version) for v in registry.find_versions(work)] == ["1"]


def test_a_wrong_data_folder_keeps_the_earlier_work(tmp_path: Path) -> None:
    work = registered_work(tmp_path)
    before = {name: hash_tree(work / name) for name in ("data", "prepare")}
    wrong = tmp_path / "not-gtsrb"
    (wrong / "photos").mkdir(parents=True)
    (wrong / "photos" / "holiday.txt").write_text("not a data set")
    result = run_local(work, "--data", str(wrong), "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 1 and graph.PREPARE.name in result.stdout + result.stderr
    assert {name: hash_tree(work / name) for name in before} == before  # the earlier prepare output is back
    assert not list(work.glob("*.previous"))
    (work / "prepare").rename(work / "prepare.previous")  # a run killed mid-prepare: the earlier output waits
    (work / "prepare" / "train").mkdir(parents=True)       # aside, its partial work under the final name
    (work / "prepare" / "train" / "train.rec.partial").write_bytes(b"half a split")
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0 and result.stdout.count("reusing the finished step") == 5
    assert {name: hash_tree(work / name) for name in before} == before and not list(work.glob("*.previous"))


def test_a_registration_interrupted_before_its_record_is_not_repeated(tmp_path: Path) -> None:
    work = registered_work(tmp_path)
    (work / "steps" / f"{graph.REGISTER}.json").unlink()  # killed right after RegisterModel, before the marker
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0, result.stderr
    assert [str(v.version) for v in registry.find_versions(work)] == ["1"]
    assert f"{graph.MODEL_PACKAGE_GROUP} version 1 " in result.stdout


def test_a_registered_version_deleted_in_the_ui_is_registered_again(tmp_path: Path) -> None:
    work = registered_work(tmp_path)
    registry.open_client(work).delete_model_version(graph.MODEL_PACKAGE_GROUP, "1")
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP)
    assert result.returncode == 0, result.stderr
    assert "version 1 is no longer in the registry (deleted?); registering the model again" in result.stdout
    assert [str(v.version) for v in registry.find_versions(work)] == ["2"]


@pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"the real GTSRB sample is not at {SAMPLE}")
def test_the_real_sample_goes_through_all_steps(tmp_path: Path) -> None:
    result = run_local(tmp_path / "work", "--data", str(SAMPLE), "--threshold", "0", "--hp", "epochs=1", "warmup_epochs=0", "batch_size=32")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "work" / "evaluation" / contract.EVALUATION_FILE).read_text())
    test_images = len(list((SAMPLE / "GTSRB" / "Final_Test" / "Images").glob("*.ppm")))
    assert report[contract.EVALUATION_DETAILS_KEY]["records"] == test_images
    assert [str(v.version) for v in registry.find_versions(tmp_path / "work")] == ["1"]


def test_two_instances_train_like_one(first_run, tmp_path: Path) -> None:
    """`make demo INSTANCES=2`: the train step on two emulated hosts (ps-lite on 127.0.0.1), each on
    its own records; the first host's model evaluates like the one-host model, within noise."""
    one = first_run[0]
    work = copy_work(one, tmp_path / "work")
    result = run_local(work, "--demo-size", *DEMO_SIZE, "--threshold", str(THRESHOLD), "--hp", *FAST_HP, "--instances", "2")
    assert result.returncode == 0, result.stderr
    assert "==> TrainModel: running" in result.stdout  # not reused: the one-host run is another job
    parts = sorted((json.loads(p.read_text()) for p in (work / "train").glob("**/output/data/records-algo-*.json")),
                   key=lambda part: part["host"])
    assert [p["host"] for p in parts] == ["algo-1", "algo-2"]
    first, second = (set(p["positions"]) for p in parts)
    assert not first & second and first | second == set(range(parts[0]["total"]))
    assert "event=kvstore type=dist_sync host=algo-2" in (work / "steps" / f"{graph.TRAIN.name}-algo-2.log").read_text()

    def accuracy(root: Path) -> float:
        return contract.json_get(json.loads((root / "evaluation" / contract.EVALUATION_FILE).read_text()), contract.ACCURACY_JSON_PATH)

    # It learned, from the first host's model. Not "within x of the one-host run": 5 epochs from
    # scratch sit on the steep part of learning, where runs of the same seed spread widely (MXNet's
    # CPU engine is not bitwise deterministic, ps-lite's order neither): two-host runs measured
    # 0.27-0.64 beside one-host runs at ~0.60 (chance: 0.023). The disjoint parts and the dist
    # kvstore are asserted above; closeness to one host cannot be, at this size.
    assert accuracy(work) >= max(THRESHOLD, 0.2), (accuracy(work), accuracy(one))
