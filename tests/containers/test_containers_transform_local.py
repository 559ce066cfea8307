"""make transform LOCAL=1: the Batch Transform request of `make transform` executed by the
SageMaker SDK's own local mode (LocalSagemakerClient, its transform job, compose) with the image
under test and a model.tar.gz by file://.

Real images (the GTSRB sample's test images when present) and a RecordIO file of them go in; each
answer must be the prediction the same model gives on this machine for that file or record. A
corrupt image fails the command naming the file while the others are answered; a missing model
fails before any container starts. No job container is left behind. Needs Docker, docker-compose
and the cpu image (`make test-containers`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.model_io import archive_model
from gtsrb.common.recordio_format import IndexedRecordWriter, image_record
from gtsrb.serve import protocol
from pipelines.deploy.errors import EXIT_DEPLOY_FAILED, EXIT_NO_VERSION
from pipelines.sagemaker_local.transform import CONTAINER_LABEL
from testkit.containers import REPO, real_image_files

pytestmark = pytest.mark.containers
JOB_TIMEOUT = 300  # seconds: a job here takes ~25 s (the SDK polls /ping every 5 s); a hang fails the test


@dataclass
class Run:
    code: int
    output: str


def make_transform(image: str, input_path: Path, output: Path, model: Path) -> Run:
    """The user's command, `make transform LOCAL=1 ...`, with the image under test's tag."""
    tag = image.rpartition(":")[2]
    cmd = ["make", "--no-print-directory", "transform", "LOCAL=1", f"INPUT={input_path}", f"OUTPUT={output}",
           f"MODEL={model}", f"TAG={tag}"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False)
    return Run(done.returncode, done.stdout + done.stderr)


def transform_cli(image: str, *args: str) -> Run:
    """The module make calls, for its own exit code (make turns any failure into 2)."""
    cmd = [sys.executable, "-m", "pipelines.sagemaker_local.transform", "--tag", image.rpartition(":")[2], *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=JOB_TIMEOUT, check=False)
    return Run(done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A tiny trained model as model.tar.gz (what training and the registry hand over), and its
    Predictor on this machine: the reference for every answer."""
    from gtsrb.serve.predictor import Predictor
    from testkit.evaluate import save_tiny_model, train_tiny_net

    folder = save_tiny_model(tmp_path_factory.mktemp("transform-model") / "model", train_tiny_net(GTSRB_NUM_CLASSES))
    archive = archive_model(folder, folder.parent / contract.MODEL_ARCHIVE)
    return archive, Predictor.load(folder)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of real image files."""
    folder = tmp_path_factory.mktemp("photos")
    for name, data in real_image_files(8).items():
        (folder / name).write_bytes(data)
    return folder


def predicted_class(predictor, image: bytes) -> int:
    (document,) = predictor.predict([image], top_k=1)
    return document[protocol.PREDICTIONS_KEY][0]["class_id"]


def no_job_container_left(docker: str) -> bool:
    listed = subprocess.run([docker, "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}"], capture_output=True,
                            text=True, check=True)
    return not listed.stdout.split()


def test_a_folder_of_images_gets_one_prediction_per_file(docker: str, image: str, model, photos: Path,
                                                         tmp_path: Path) -> None:
    archive, predictor = model
    run = make_transform(image, photos, tmp_path / "scored", archive)
    assert run.code == 0, run.output[-4000:]
    files = sorted(p.name for p in photos.iterdir())
    assert sorted(p.name for p in (tmp_path / "scored").iterdir()) == [f"{name}.out" for name in files]
    for name in files:
        answer = (tmp_path / "scored" / f"{name}.out").read_bytes()
        predictions = protocol.parse_answer(answer, GTSRB_NUM_CLASSES)  # one JSON document, sorted, valid ids
        assert predictions[0]["class_id"] == predicted_class(predictor, (photos / name).read_bytes()), name
    assert f"transform: {len(files)} of {len(files)} images answered ({protocol.JSON_CONTENT_TYPE})" in run.output
    assert no_job_container_left(docker)


def test_a_recordio_file_gets_one_json_line_per_record(docker: str, image: str, model, photos: Path,
                                                       tmp_path: Path) -> None:
    archive, predictor = model
    images = [p.read_bytes() for p in sorted(photos.iterdir())] * 3  # 24 records, one MultiRecord request
    writer = IndexedRecordWriter(tmp_path / "batch.idx", tmp_path / "batch.rec")
    for index, data in enumerate(images):
        writer.write_idx(index, image_record(index % GTSRB_NUM_CLASSES, index, data))
    writer.close()
    run = make_transform(image, tmp_path / "batch.rec", tmp_path / "scored", archive)
    assert run.code == 0, run.output[-4000:]
    lines = [line for line in (tmp_path / "scored" / "batch.rec.out").read_text().splitlines() if line.strip()]
    assert len(lines) == len(images)  # AssembleWith=Line adds one empty line after each request's JSON Lines
    classes = [protocol.check_prediction(json.loads(line), GTSRB_NUM_CLASSES)[0]["class_id"] for line in lines]
    assert classes == [predicted_class(predictor, data) for data in images]  # in record order
    assert f"transform: {len(images)} of {len(images)} records answered ({protocol.JSONLINES_CONTENT_TYPE})" in run.output
    assert no_job_container_left(docker)


def test_a_corrupt_image_fails_naming_it_and_the_others_are_answered(docker: str, image: str, model, photos: Path,
                                                                     tmp_path: Path) -> None:
    archive, _ = model
    mixed = tmp_path / "mixed"
    shutil.copytree(photos, mixed)
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    run = transform_cli(image, "--input", str(mixed), "--output", str(tmp_path / "scored"), "--model", str(archive))
    assert run.code == EXIT_DEPLOY_FAILED, run.output[-4000:]
    (error,) = [line for line in run.output.splitlines() if line.startswith("ERROR:")]
    count = len(list(photos.iterdir()))
    assert f"only {count} of {count + 1} images got a prediction" in error
    assert "broken.png: refused (the body is not a usable image" in error
    assert "Traceback" not in run.output
    refused = json.loads((tmp_path / "scored" / "broken.png.out").read_text())
    assert set(refused) == {protocol.ERROR_KEY}  # the server's answer, kept where the SDK wrote it
    for path in photos.iterdir():
        protocol.parse_answer((tmp_path / "scored" / f"{path.name}.out").read_bytes(), GTSRB_NUM_CLASSES)
    assert no_job_container_left(docker)


def test_a_missing_model_is_one_sentence_before_any_container(docker: str, image: str, photos: Path,
                                                              tmp_path: Path) -> None:
    missing = tmp_path / "no-such" / contract.MODEL_ARCHIVE
    run = transform_cli(image, "--input", str(photos), "--output", str(tmp_path / "scored"), "--model", str(missing))
    assert run.code == EXIT_NO_VERSION, run.output
    assert run.output.strip() == f"ERROR: MODEL={missing}: no such model folder or model.tar.gz."
    assert not (tmp_path / "scored").exists()
    assert no_job_container_left(docker)
