"""make transform LOCAL=1 without Docker: bad input is one sentence and exit 1 before anything
starts, and the answers the SDK's local mode wrote are read back (a refusal, a missing answer, too
few lines are each named). The job itself runs in tests/containers/test_containers_transform_local.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gtsrb.common.recordio_format import IndexedRecordWriter, image_record
from gtsrb.serve import protocol
from pipelines.deploy import errors, transform
from pipelines.sagemaker_local.transform import check_answers, main
from testkit.pipelines import REPO_ROOT

PREDICTION = json.dumps({protocol.PREDICTIONS_KEY: [{"class_id": 14, "class_name": "Stop", "probability": 0.9}]})


def run(capsys, *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(["--tag", "no-such-tag", "--model", "no-such-model", *argv])
    return exited.value.code, capsys.readouterr().err


def write_rec(path: Path, count: int) -> Path:
    writer = IndexedRecordWriter(path.with_suffix(".idx"), path)
    for index in range(count):
        writer.write_idx(index, image_record(index, index, b"\xff\xd8 not decoded here"))
    writer.close()
    return path


def test_make_transform_local_says_what_it_needs() -> None:
    done = subprocess.run(["make", "transform", "LOCAL=1"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "make transform LOCAL=1: set INPUT=<folder of images or x.rec> and OUTPUT=" in done.stderr


def test_bad_input_is_one_sentence_before_docker(tmp_path: Path, capsys) -> None:
    out = ["--output", str(tmp_path / "out")]
    code, err = run(capsys, "--input", str(tmp_path / "nowhere"), *out)
    assert code == errors.EXIT_BAD_INPUT and f"INPUT={tmp_path / 'nowhere'}: no such folder or .rec file." in err

    (tmp_path / "empty").mkdir()
    code, err = run(capsys, "--input", str(tmp_path / "empty"), *out)
    assert code == errors.EXIT_BAD_INPUT and "holds no files: nothing to transform" in err

    nested = tmp_path / "by-class" / "stop"
    nested.mkdir(parents=True)
    (nested / "a.png").write_bytes(b"png")
    code, err = run(capsys, "--input", str(tmp_path / "by-class"), *out)
    assert code == errors.EXIT_BAD_INPUT and "has files in subfolders (1, e.g." in err and "a folder of image files" in err

    (tmp_path / "photos.rec").write_bytes(b"not RecordIO at all")
    code, err = run(capsys, "--input", str(tmp_path / "photos.rec"), *out)
    assert code == errors.EXIT_BAD_INPUT and "is not a RecordIO file: no RecordIO magic number at offset 0" in err
    assert err.count("ERROR:") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_every_answer_is_read_back(tmp_path: Path) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    out.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (photos / name).write_bytes(b"image")
    (out / "a.png.out").write_text(PREDICTION)
    (out / "b.png.out").write_text(json.dumps(protocol.error_document("the body is not a usable image.")))
    answered, problems = check_answers(photos, out, transform.IMAGES, 3)
    assert answered == 1
    assert problems == ["b.png: refused (the body is not a usable image)", "c.png: no answer (c.png.out was not written)"]


def test_a_recordio_answer_has_a_line_per_record(tmp_path: Path) -> None:
    rec, out = write_rec(tmp_path / "batch.rec", 3), tmp_path / "out"
    out.mkdir()
    (out / "batch.rec.out").write_text(f"{PREDICTION}\n{PREDICTION}\n\n")
    assert check_answers(rec, out, transform.RECORDS, 3) == (2, ["batch.rec: 2 answers for 3 records"])
    (out / "batch.rec.out").write_text(f"{PREDICTION}\n{PREDICTION}\n{PREDICTION}\n\n")
    assert check_answers(rec, out, transform.RECORDS, 3) == (3, [])
