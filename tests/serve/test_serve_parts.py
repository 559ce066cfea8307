"""The server's parts without a server: wire format, RecordIO reading, model sources, `predict`."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.failure import StepError
from gtsrb.common.image_input import decode_checked
from gtsrb.common.model_io import archive_model
from gtsrb.common.recordio_format import MAGIC, RecordIOError, image_of, split_records
from gtsrb.serve import labels, protocol
from pipelines.local import mlflow_registry
from testkit.serve import REPO


@pytest.mark.parametrize(("header", "top_k"), [(None, 5), ("top_k=3", 3), ("a=b; top_k=43", 43), ("x=1", 5)])
def test_top_k_from_the_header(header: str | None, top_k: int) -> None:
    assert protocol.parse_top_k(header, GTSRB_NUM_CLASSES) == top_k


@pytest.mark.parametrize("header", ["top_k=0", "top_k=44", "top_k=two", "top_k=-1"])
def test_bad_top_k_is_refused(header: str) -> None:
    with pytest.raises(ValueError, match="top_k must be an integer from 1 to 43"):
        protocol.parse_top_k(header, GTSRB_NUM_CLASSES)


def test_prediction_document_passes_the_check() -> None:
    probabilities = [0.1, 0.7, 0.2] + [0.0] * (GTSRB_NUM_CLASSES - 3)
    document = protocol.prediction_document(probabilities, [str(i) for i in range(GTSRB_NUM_CLASSES)], 2)
    assert [p["class_id"] for p in protocol.check_prediction(document, GTSRB_NUM_CLASSES)] == [1, 2]


def test_split_records_reads_what_mxnet_reads(tmp_path: Path) -> None:
    magic = MAGIC.to_bytes(4, "little")
    payloads = [b"abc", b"", b"x" * 8 + magic + b"y" * 5, magic * 3, b"z" * 13]
    idx, rec = tmp_path / "a.idx", tmp_path / "a.rec"
    writer = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "w")
    for i, payload in enumerate(payloads):
        writer.write_idx(i, payload)
    writer.close()
    assert split_records(rec.read_bytes()) == payloads


@pytest.mark.parametrize("data", [b"\0" * 12, MAGIC.to_bytes(4, "little") + (100).to_bytes(4, "little") + b"short", b"abc"])
def test_split_records_refuses_broken_framing(data: bytes) -> None:
    with pytest.raises(RecordIOError):
        split_records(data)


def test_image_of_strips_the_record_header(tmp_path: Path) -> None:
    packed = mx.recordio.pack(mx.recordio.IRHeader(2, [1.0, 2.0], 7, 0), b"IMAGE")  # flag 2: two extra labels
    assert image_of(packed) == b"IMAGE"


def test_absurd_header_sizes_are_refused_before_decoding() -> None:
    image, reason = decode_checked(b"P6\n60000 60000\n255\n" + b"\0" * 10)
    assert image is None and "pixels" in reason


def test_sources_resolve_paths_and_refuse_bad_uris(tmp_path: Path) -> None:
    assert mlflow_registry.resolve(tmp_path / "m", tmp_path) == tmp_path / "m"
    with pytest.raises(StepError, match="not a registry URI"):
        mlflow_registry.resolve("models:/only-a-name", tmp_path)
    with pytest.raises(StepError, match="no MLflow store at sqlite:///.*run `make demo`"):
        mlflow_registry.resolve("models:/gtsrb-traffic-signs/1", tmp_path / "work")


@pytest.mark.slow
def test_registry_uri_by_version_and_alias(tiny_model: Path, tmp_path: Path) -> None:
    archive = archive_model(tiny_model, tmp_path / "model.tar.gz")
    client = mlflow_registry.open_client(tmp_path / "work")
    client.create_registered_model("gtsrb-traffic-signs")
    version = client.create_model_version("gtsrb-traffic-signs", source=str(archive), await_creation_for=0)
    client.set_registered_model_alias("gtsrb-traffic-signs", "staging", version.version)
    for uri in (f"models:/gtsrb-traffic-signs/{version.version}", "models:/gtsrb-traffic-signs@staging"):
        assert mlflow_registry.resolve(uri, tmp_path / "work") == archive
    with pytest.raises(StepError, match="not in the registry"):
        mlflow_registry.resolve("models:/gtsrb-traffic-signs@prod", tmp_path / "work")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """A command of the project, from the repository root."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_predict_writes_one_row_per_file(tiny_model: Path, sample_images: list[bytes], tmp_path: Path) -> None:
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(sample_images[:3]):
        (folder / "sub" / f"{i}.png").write_bytes(image)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    archive = archive_model(tiny_model, tmp_path / "model.tar.gz")
    out = tmp_path / "out" / "predictions.csv"
    result = run_cli("gtsrb.serve.predict", str(folder), str(tmp_path / "missing.ppm"), "--model", str(archive), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["file"]).name for r in rows] == ["broken.jpg", "0.png", "1.png", "2.png", "missing.ppm"]
    assert "not a decodable image" in rows[0]["error"] and "No such file" in rows[4]["error"]
    assert all(0 <= int(r["class_id"]) < GTSRB_NUM_CLASSES and not r["error"] for r in rows[1:4])
    assert "predicted 3 of 5 images" in result.stdout


def test_true_classes_from_a_csv_or_the_folder_name(tmp_path: Path) -> None:
    names = [f"class {i}" for i in range(GTSRB_NUM_CLASSES)]
    gtsrb_test, per_class = tmp_path / "Final_Test" / "Images", tmp_path / "train"
    gtsrb_test.mkdir(parents=True)
    (gtsrb_test / "GT-final_test.csv").write_text("Filename;Width;Height;ClassId\n00000.ppm;30;30;13\n00001.ppm;30;30;99\n")
    files = [gtsrb_test / "00000.ppm", gtsrb_test / "00001.ppm", per_class / "00014" / "a.png", per_class / "Class 2" / "b.png",
             per_class / "unknown" / "c.png"]
    found = labels.true_classes([gtsrb_test, per_class], files, names)
    assert found == {files[0]: 13, files[2]: 14, files[3]: 2}  # class 99 and folder "unknown" name no class of the model
    kaggle = tmp_path / "Test.csv"
    kaggle.write_text("Width,Height,ClassId,Path\n30,30,7,Test/00000.png\n")
    assert labels.read_csv(kaggle) == {(tmp_path / "Test" / "00000.png").resolve(): "7"}
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert labels.read_csv(tmp_path / "other.csv") is None


@pytest.mark.slow
def test_predict_a_labelled_csv_with_top_k_adds_the_truth_and_prints_accuracy(tiny_model: Path, sample_images: list[bytes],
                                                                               tmp_path: Path) -> None:
    folder = tmp_path / "Test"
    folder.mkdir()
    for i, image in enumerate(sample_images[:4]):
        (folder / f"{i}.png").write_bytes(image)
    probe = run_cli("gtsrb.serve.predict", str(folder), "--model", str(tiny_model), "--out", str(tmp_path / "probe.csv"))
    assert probe.returncode == 0, probe.stderr
    predicted = [row["class_id"] for row in csv.DictReader((tmp_path / "probe.csv").open())]
    truth = [predicted[0], predicted[1], predicted[2], str((int(predicted[3]) + 1) % GTSRB_NUM_CLASSES)]  # 3 of 4 right
    table = tmp_path / "Test.csv"
    table.write_text("Path,ClassId\n" + "".join(f"Test/{i}.png,{c}\n" for i, c in enumerate(truth)))
    out = tmp_path / "out.csv"
    result = run_cli("gtsrb.serve.predict", str(table), "--model", str(tiny_model), "--out", str(out), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["true_class_id"] for r in rows] == truth and [r["correct"] for r in rows] == ["1", "1", "1", "0"]
    assert all(float(r["probability"]) >= float(r["probability_2"]) >= float(r["probability_3"]) for r in rows)
    assert "accuracy 0.7500 (3 of 4 images with a known true class)" in result.stdout
    bad = run_cli("gtsrb.serve.predict", str(table), "--model", str(tiny_model), "--top-k", "44", "--out", str(out))
    assert bad.returncode == 2 and "--top-k 44: must be from 1 to 43" in bad.stderr


@pytest.mark.slow
def test_serve_and_predict_default_to_the_newest_version_registered_by_work(tiny_model: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.local import mlflow_registry as registry
    from testkit.pipelines import fake_submission

    work, other = tmp_path / "runs" / "demo", tmp_path / "runs" / "other"
    with pytest.raises(StepError, match=r"no model version registered by .*demo.*MODEL=.*train/model"):
        registry.newest_registered_uri(work)
    submission = fake_submission(tmp_path)
    shutil.rmtree(submission.model_dir)
    shutil.copytree(tiny_model, submission.model_dir)
    registry.register(work, submission)  # version 1
    registry.register(work, submission)  # version 2: the newest of WORK
    registry.register(other, submission)  # version 3, same store, another WORK
    uri, note = registry.newest_registered_uri(work)
    assert uri == "models:/gtsrb-traffic-signs/2" and "PendingManualApproval" in note
    # make serve/predict without MODEL=: the host resolves WORK's newest version, the server gets its path
    resolved = run_cli("pipelines.deploy.local_twin", "path", "--work", str(work))
    assert resolved.returncode == 0, resolved.stderr
    assert ">> model models:/gtsrb-traffic-signs/2: the newest version registered by" in resolved.stderr
    assert Path(resolved.stdout.strip()) == registry.resolve(uri, work)
    (tmp_path / "a.png").write_bytes((REPO / "tests" / "data" / "signs" / "class_14.png").read_bytes())
    result = run_cli("gtsrb.serve.predict", str(tmp_path / "a.png"), "--model", resolved.stdout.strip(), "--out", str(work / "p.csv"))
    assert result.returncode == 0, result.stderr
    # MLflow itself loads the registered version (a pyfunc) and predicts with it
    import mlflow
    import pandas as pd

    monkeypatch.setenv(registry.TRACKING_URI_ENV, registry.tracking_uri(work))  # as a user points MLflow at the store
    model = mlflow.pyfunc.load_model("models:/gtsrb-traffic-signs/2")
    answer = model.predict(pd.DataFrame({"path": [str(tmp_path / "a.png")]}))
    ours = next(csv.DictReader((work / "p.csv").open()))
    assert int(answer["class_id"][0]) == int(ours["class_id"]) and answer["error"][0] == ""


@pytest.mark.parametrize("module", ["gtsrb.serve", "gtsrb.serve.predict"])
def test_a_missing_model_is_one_sentence_and_exit_2(module: str, tmp_path: Path) -> None:
    args = ["--model", str(tmp_path / "nope")] + ([str(tmp_path)] if module.endswith("predict") else [])
    (tmp_path / "a.png").write_bytes(b"x")
    result = run_cli(module, *args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("ERROR:") and "Traceback" not in result.stderr


def test_each_worker_gets_its_share_of_the_cpus_whatever_it_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make serve` resolves the model on the host, whose train package set one OpenMP thread per core
    for one process; two workers must split the cores, not each take them all."""
    from types import SimpleNamespace

    from gtsrb.serve import server

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("MXNET_CPU_WORKER_NTHREADS", raising=False)  # restored (removed) after the test
    monkeypatch.delenv(protocol.ENV_WORKERS, raising=False)
    monkeypatch.setattr(server.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(server, "gpu_count", lambda: 0)
    server._limit_threads(SimpleNamespace(cfg=SimpleNamespace(workers=4)), SimpleNamespace(age=0))
    assert server.os.environ["OMP_NUM_THREADS"] == "1"
