"""The server's HTTP contract, through a real gunicorn server with two workers on a tiny model."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.recordio_format import IndexedRecordWriter, image_record
from gtsrb.serve import protocol
from testkit.serve import START_SECONDS, free_port, launch

pytestmark = pytest.mark.slow  # a server start imports MXNet in each worker (seconds)


@pytest.mark.parametrize("content_type", protocol.IMAGE_CONTENT_TYPES)
def test_an_image_gets_the_top_5(server, sample_images: list[bytes], content_type: str) -> None:
    answer = server.post(sample_images[0], content_type)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(protocol.JSON_CONTENT_TYPE)
    predictions = protocol.parse_answer(answer.content, GTSRB_NUM_CLASSES)
    assert len(predictions) == protocol.DEFAULT_TOP_K
    assert 0.99 < sum(p["probability"] for p in predictions) <= 1.0 + 1e-5 or len(predictions) < GTSRB_NUM_CLASSES


def test_top_k_from_the_custom_attributes_header(server, sample_images: list[bytes]) -> None:
    answer = server.post(sample_images[1], "image/png", **{protocol.CUSTOM_ATTRIBUTES_HEADER: "trace=1,top_k=2"})
    assert len(protocol.parse_answer(answer.content, GTSRB_NUM_CLASSES)) == 2
    everything = server.post(sample_images[1], "image/png", **{protocol.CUSTOM_ATTRIBUTES_HEADER: f"top_k={GTSRB_NUM_CLASSES}"})
    probabilities = [p["probability"] for p in protocol.parse_answer(everything.content, GTSRB_NUM_CLASSES)]
    assert len(probabilities) == GTSRB_NUM_CLASSES and abs(sum(probabilities) - 1.0) < 1e-4


def test_gray_rgba_jpeg_and_large_images_are_accepted(server, sample_images: list[bytes]) -> None:
    rgb = cv2.imdecode(np.frombuffer(sample_images[2], np.uint8), cv2.IMREAD_COLOR)
    # np.repeat, not cv2.resize: OpenCV's thread pool in this process would deadlock the prepare
    # step's fork pool that later tests' fixtures use.
    big = np.repeat(np.repeat(rgb, 30, axis=0), 20, axis=1)  # 540x360
    variants = {
        "gray": cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY))[1],
        "rgba": cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_BGR2BGRA))[1],
        "jpeg": cv2.imencode(".jpg", big)[1],
        "ppm": cv2.imencode(".ppm", big)[1],
    }
    for name, data in variants.items():
        answer = server.post(data.tobytes(), "application/x-image")
        assert answer.status_code == 200, (name, answer.text)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"\x89PNG", "text/csv", 415, "content type 'text/csv' is not supported"),
        (b"", "image/png", 400, "body is empty"),
        (b"not an image at all", "image/jpeg", 400, "not a decodable image"),
        (b"junk records", protocol.RECORDIO_CONTENT_TYPE, 400, "not RecordIO"),
    ],
)
def test_bad_requests_get_one_sentence(server, body: bytes, content_type: str, status: int, words: str) -> None:
    answer = server.post(body, content_type)
    assert answer.status_code == status
    message = answer.json()[protocol.ERROR_KEY]
    assert words in message and message.endswith(".") and "Traceback" not in message


def test_bad_top_k_is_a_400(server, sample_images: list[bytes]) -> None:
    answer = server.post(sample_images[0], "image/png", **{protocol.CUSTOM_ATTRIBUTES_HEADER: "top_k=0"})
    assert answer.status_code == 400 and "top_k" in answer.json()[protocol.ERROR_KEY]


def test_an_absurd_image_size_is_a_400_not_a_crash(server) -> None:
    header = b"P6\n100000 100000\n255\n" + b"\0" * 100  # claims 10 gigapixels
    answer = server.post(header, "application/x-image")
    assert answer.status_code == 400 and "pixels" in answer.json()[protocol.ERROR_KEY]
    assert server.proc.poll() is None and requests.get(f"{server.url}/ping", timeout=2).status_code == 200


def test_over_the_payload_limit_is_a_413(server) -> None:
    answer = server.post(b"\0" * (protocol.DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024 + 1), "image/jpeg")
    assert answer.status_code == 413
    assert "payload limit" in answer.json()[protocol.ERROR_KEY]


def test_recordio_batch_answers_json_lines_in_order(server, sample_images: list[bytes], tmp_path: Path) -> None:
    files = tmp_path / "batch.idx", tmp_path / "batch.rec"
    writer = IndexedRecordWriter(*files)
    for i, image in enumerate(sample_images):
        writer.write_idx(i, image_record(0, i, image))
    writer.close()
    answer = server.post(files[1].read_bytes(), protocol.RECORDIO_CONTENT_TYPE)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(protocol.JSONLINES_CONTENT_TYPE)
    batch = [json.loads(line) for line in answer.text.splitlines()]
    singles = [server.post(image, "image/png").json() for image in sample_images]
    assert len(batch) == len(sample_images)
    for got, single in zip(batch, singles, strict=True):  # a batch of 8 may differ from batches of 1 in the 6th decimal
        assert [p["class_id"] for p in got["predictions"]][:1] == [p["class_id"] for p in single["predictions"]][:1]
        assert np.allclose([p["probability"] for p in got["predictions"]],
                           [p["probability"] for p in single["predictions"]], atol=1e-5)


def test_execution_parameters_for_batch_transform(server) -> None:
    parameters = requests.get(f"{server.url}{protocol.EXECUTION_PARAMETERS_PATH}", timeout=5).json()
    assert parameters == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD",
                          "MaxPayloadInMB": protocol.DEFAULT_MAX_PAYLOAD_MB}


def test_concurrent_requests_all_get_their_own_answer(server, sample_images: list[bytes]) -> None:
    expected = [server.post(image, "image/png").json() for image in sample_images]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: server.post(sample_images[i % 8], "image/png"), range(48)))
    assert all(a.status_code == 200 for a in answers)
    assert [a.json() for a in answers] == [expected[i % 8] for i in range(48)]


def test_one_log_line_per_invocation(server, sample_images: list[bytes]) -> None:
    before = server.log.read_text().count("event=invocation")
    server.post(sample_images[0], "image/png")
    server.post(b"", "image/png")
    time.sleep(0.5)
    lines = [line for line in server.log.read_text().splitlines() if "event=invocation" in line][before:]
    assert len(lines) == 2
    assert "status=200 images=1 ms=" in lines[0] and "status=400" in lines[1]


def test_a_crashed_worker_is_replaced(server, sample_images: list[bytes]) -> None:
    old = server.worker_pids()
    victim = min(old)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(server.worker_pids() - {victim}) < 2):
        time.sleep(0.2)
    assert len(server.worker_pids() - old) == 1, "gunicorn did not start a new worker"
    server.wait_ready()
    time.sleep(8)  # let the new worker load its model before the check below (it answers 503 till then)
    with ThreadPoolExecutor(4) as pool:
        codes = set(pool.map(lambda _: server.post(sample_images[0], "image/png").status_code, range(16)))
    assert codes == {200}


def test_ping_is_503_while_the_workers_load_and_200_with_the_model(tiny_model: Path, tmp_path: Path) -> None:
    server = launch(tiny_model, tmp_path / "server.log")
    try:
        deadline, first = time.monotonic() + START_SECONDS, None  # the port opens once the model passed its check
        while first is None and time.monotonic() < deadline:
            try:
                first = requests.get(f"{server.url}/ping", timeout=2).status_code
            except requests.ConnectionError:
                time.sleep(0.05)
        assert first == 503  # answered before the model (and MXNet) finished loading
        server.wait_ready()
    finally:
        assert server.stop() == 0  # SIGTERM: graceful, exit code 0
    assert "Shutting down" in server.log.read_text()


def test_sagemaker_environment_sets_port_payload_and_batch(tiny_model: Path, tmp_path: Path, sample_images) -> None:
    port = free_port()
    server = launch(tiny_model, tmp_path / "server.log", SAGEMAKER_BIND_TO_PORT=str(port),
                    SAGEMAKER_BATCH="true", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    try:
        server.wait_ready()
        assert server.post(b"\0" * (1024 * 1024 + 1), "image/png").status_code == 413
        assert requests.get(f"{server.url}/execution-parameters", timeout=5).json()["MaxPayloadInMB"] == 1
        assert "batch=True" in server.log.read_text()
    finally:
        server.stop()
