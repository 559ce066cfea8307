"""The local runner's parts: graph paths mapped under WORK, the toolkit environment, step reuse, registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common import contract, sagemaker_job
from gtsrb.evaluate import report
from pipelines import graph
from pipelines.local import cli, emulated_job, layout, run_record
from pipelines.local import mlflow_registry as registry
from pipelines.local.cache import Marker, StepCache, hash_tree, step_key
from testkit.pipelines import evaluation_report, fake_submission


def test_processing_outputs_follow_the_readme_layout(tmp_path: Path) -> None:
    prepare = layout.processing_outputs(graph.PREPARE, tmp_path)
    assert prepare == {name: tmp_path / "prepare" / name for name in (*contract.SPLITS, contract.MANIFEST_OUTPUT)}
    assert layout.processing_outputs(graph.EVALUATE, tmp_path) == {"evaluation": tmp_path / "evaluation"}


@pytest.mark.parametrize("spec", [graph.PREPARE, graph.EVALUATE], ids=lambda s: s.name)
def test_every_container_path_of_a_command_is_mapped_under_work(spec: graph.ProcessingSpec, tmp_path: Path) -> None:
    data = tmp_path / "raw"
    args = layout.local_arguments(spec.command()[1:], layout.container_mapping(spec, tmp_path, data))
    assert not [a for a in args if a.startswith("/opt/ml")], args
    assert args[:2] == ["-m", spec.module]
    for name, inp in spec.inputs.items():  # each input flag now points at its source's local path
        local_path = layout.local_source(inp.source, tmp_path, data)
        assert str(local_path) in args, (name, args)


def test_evaluate_reads_what_prepare_and_train_write(tmp_path: Path) -> None:
    mapping = layout.container_mapping(graph.EVALUATE, tmp_path, tmp_path / "raw")
    args = layout.local_arguments(graph.EVALUATE.arguments, mapping)
    assert args[args.index("--model") + 1] == str(tmp_path / "train" / contract.MODEL_ARCHIVE)
    assert args[args.index("--test") + 1] == str(tmp_path / "prepare" / "test")
    assert args[args.index("--output") + 1] == str(tmp_path / "evaluation")


def test_local_arguments_prefers_the_longest_container_path() -> None:
    mapping = {Path("/opt/ml/a"): Path("/x"), Path("/opt/ml/a/b"): Path("/y")}
    assert layout.local_arguments(["/opt/ml/a/b/c", "/opt/ml/a", "/opt/ml/ab", "3"], mapping) == [
        "/y/c", "/x", "/opt/ml/ab", "3"
    ]


def test_training_env_is_the_toolkit_contract(tmp_path: Path) -> None:
    job = emulated_job.JobDirs(tmp_path / "train")
    channels = {ch: layout.local_source(src, tmp_path, tmp_path / "raw") for ch, src in graph.TRAIN.channels.items()}
    env = emulated_job.training_env(job, channels, {"epochs": "2", "amp": "False"}, num_gpus=0)
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "prepare" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(tmp_path / "prepare" / "validation")
    assert env["SM_MODEL_DIR"] == str(tmp_path / "train" / "model")
    assert env["SAGEMAKER_BASE_DIR"] == str(tmp_path / "train")  # so /opt/ml/checkpoints -> train/checkpoints
    assert json.loads(env["SM_HPS"]) == {"epochs": 2, "amp": "False"}  # typed where JSON, as the toolkit does
    assert json.loads(env["SM_CHANNELS"]) == sorted(graph.TRAIN.channels)
    args = sagemaker_job.hyperparameters_to_args({"epochs": "2", "amp": "False"})
    assert args == ["--amp", "False", "--epochs", "2"]  # in key order, as the toolkit passes them
    assert sagemaker_job.args_to_hyperparameters(args) == {"epochs": "2", "amp": "False"}  # the train step's reading


def test_parse_args_reads_the_makefile_flags(tmp_path: Path) -> None:
    options = cli.parse_args(["--work", str(tmp_path), "--threshold", "0.5", "--hp", "epochs=3", "image_size=32", "--no-cache"])
    assert options.hyperparameters == {"epochs": "3", "image_size": "32"}
    assert (options.threshold, options.use_cache, options.data) == (0.5, False, None)
    with pytest.raises(SystemExit):
        cli.parse_args(["--hp", "epochs"])
    with pytest.raises(SystemExit):
        cli.parse_args(["--data", str(tmp_path / "missing")])


def test_step_cache_hits_only_the_same_key_with_outputs_present(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("1")
    cache = StepCache(tmp_path / "steps")
    key = step_key("S", code="x", inputs={"a": "h"})
    cache.write(Marker("S", key, 1.0, {"out": hash_tree(out)}))
    assert cache.lookup("S", key, {"out": out}) is not None
    assert cache.lookup("S", step_key("S", code="x", inputs={"a": "other"}), {"out": out}) is None
    assert StepCache(tmp_path / "steps", enabled=False).lookup("S", key, {"out": out}) is None
    (out / "a.txt").unlink()
    out.rmdir()
    assert cache.lookup("S", key, {"out": out}) is None


def test_hash_tree_sees_content_and_names(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    first = hash_tree(tmp_path / "d")
    (tmp_path / "d" / "a").write_text("2")
    second = hash_tree(tmp_path / "d")
    (tmp_path / "d" / "a").rename(tmp_path / "d" / "b")
    assert len({first, second, hash_tree(tmp_path / "d")}) == 3


def test_evaluation_metrics_flattens_the_report() -> None:
    metrics = report.evaluation_metrics(evaluation_report(0.93))
    assert metrics["test_accuracy"] == 0.93 and metrics["test_accuracy_std"] == 0.01
    assert metrics["test_weighted_f1"] == 0.9 and metrics["test_macro_f1"] == 0.85 and metrics["test_records"] == 120
    assert not [k for k in metrics if "best_constant" in k or "confusion" in k]
    written = evaluation_report(0.93)
    assert report.evaluation_metrics(written)["test_accuracy"] == contract.json_get(written, contract.ACCURACY_JSON_PATH)


def test_history_metrics_use_the_epoch_as_step() -> None:
    rows = registry.history_metrics([{"epoch": 1, "train_loss": 2.0, "val_acc": 0.4}, {"epoch": 2, "train_loss": 1.0, "val_acc": 0.7}])
    assert ("val_acc", 0.7, 2) in rows and ("train_loss", 2.0, 1) in rows and len(rows) == 4


@pytest.mark.slow  # MLflow's import and SQLite schema creation take ~4 s
def test_register_creates_a_pending_version_with_metrics_and_artifacts(tmp_path: Path) -> None:
    submission = fake_submission(tmp_path, accuracy=0.93, seconds=42.5)
    model_dir = submission.model_dir
    work = tmp_path / "work"
    first, second = registry.register(work, submission), registry.register(work, submission)
    assert (first.version, second.version) == ("1", "2")
    assert registry.TRACKING_URI_ENV not in os.environ  # MLflow's global URI was set for a while, and put back
    client = registry.open_client(work)
    version = client.get_model_version(graph.MODEL_PACKAGE_GROUP, "1")
    assert version.tags[registry.APPROVAL_TAG] == graph.PENDING == "PendingManualApproval"
    assert float(version.tags["test_accuracy"]) == 0.93
    assert (version.tags["num_classes"], version.tags["class_names"]) == ("3", "cat, dog, fox")  # the data's classes
    run = client.get_run(first.run_id)
    assert run.data.metrics["test_accuracy"] == 0.93
    # every resolved hyperparameter (the model's hyperparameters.json), not only the overrides
    assert {k: run.data.params[k] for k in ("epochs", "lr", "warmup_epochs", "threshold")} == {
        "epochs": "2", "lr": "0.1", "warmup_epochs": "1.0", "threshold": "0.9"}
    assert run.data.tags[registry.DATA_HASH_TAG] == "feed" * 16
    assert len(run.data.tags[run_record.GIT_COMMIT_TAG]) == 40 and run.data.tags[run_record.GIT_DIRTY_TAG] in ("true", "false")
    assert run.info.end_time - run.info.start_time == 42500 and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(first.run_id, "val_acc")] == [1, 2]
    # listed by a client of the store alone (MLflow's global tracking URI is not this store's)
    artifacts = {a.path for folder in ("model", "evaluation", "data", "training") for a in client.list_artifacts(first.run_id, folder)}
    assert {"model/model.tar.gz", "evaluation/evaluation.json", "evaluation/per_class.csv", "data/manifest.json",
            f"training/{run_record.CURVES_PNG}"} <= artifacts
    # the model is an MLflow (pyfunc) model of the run, and the version points at it
    (logged,) = client.search_logged_models(experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{first.run_id}'")
    assert version.source == first.source == f"models:/{logged.model_id}" and version.tags[registry.WORK_TAG] == str(work.resolve())
    served = Path(registry.version_source(work, graph.MODEL_PACKAGE_GROUP, "1", None))
    assert (served / contract.HISTORY_FILE).read_text() == (model_dir / contract.HISTORY_FILE).read_text()
    assert str(registry.newest_registered(work).version) == "2" and registry.newest_registered(tmp_path / "other") is None
    assert registry.default_db(work) == tmp_path / registry.DB_FILE  # beside WORK: one store for runs/<name>
    assert (tmp_path / registry.DB_FILE).is_file() and (tmp_path / registry.ARTIFACTS_DIR).is_dir()
    assert len(registry.find_versions(work)) == 2


def _run(*args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pipelines.local", *args]
    return subprocess.run(argv, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)


def test_a_bad_hyperparameter_fails_before_any_step(tmp_path: Path) -> None:
    result = _run("--work", str(tmp_path / "work"), "--data", str(tmp_path), "--hp", "epoch=3")
    assert result.returncode == cli.EXIT_FAILED
    assert "unknown hyperparameter 'epoch'" in result.stderr and "==>" not in result.stdout


def test_a_failing_step_stops_the_run_with_its_reason_and_log(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run("--work", str(tmp_path / "work"), "--data", str(tmp_path / "empty"))
    assert result.returncode == cli.EXIT_FAILED
    log = tmp_path / "work" / "steps" / f"{graph.PREPARE.name}.log"
    assert f"ERROR: {graph.PREPARE.name} failed: " in result.stderr
    assert str(tmp_path / "empty") in result.stderr and str(log) in result.stderr
    assert log.is_file() and not (tmp_path / "work" / "steps" / f"{graph.PREPARE.name}.json").exists()
    assert f"==> {graph.TRAIN.name}" not in result.stdout
    sentence = emulated_job.failure_reason(tmp_path / "work" / "steps" / graph.PREPARE.name / "output" / "message")
    assert sentence and (result.stdout + result.stderr).count(sentence) == 1  # once on the console ...
    assert log.read_text().count(sentence) == 1  # ... and once in the step's log


def test_the_store_is_mlflow_tracking_uri_else_beside_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "runs" / "demo"
    assert registry.tracking_uri(work) == f"sqlite:///{tmp_path / 'runs' / registry.DB_FILE}"
    assert registry.tracking_uri(tmp_path / "runs" / "other") == registry.tracking_uri(work)  # one store for runs/*
    assert not registry.store_exists(work)
    monkeypatch.setenv(registry.TRACKING_URI_ENV, "http://127.0.0.1:5000")
    assert registry.tracking_uri(work) == "http://127.0.0.1:5000" and registry.store_exists(work)


def test_make_demo_says_the_pipelines_exit_code(tmp_path: Path) -> None:
    done = subprocess.run(["make", "-o", ".venv/.installed", "demo", f"WORK={tmp_path / 'work'}", "HP=epoch=3"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2  # GNU make's own code for any failed recipe
    assert "make demo: the pipeline exited 1 (1 a step failed, 3 accuracy below the threshold" in done.stderr
