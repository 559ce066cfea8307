"""Faults and load against the model server (issue 24): slow clients, bombs, huge and chunked
batches, deadlines, broken models, bad settings, shutdown. Servers are real, on 127.0.0.1 only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from gtsrb.common import contract
from gtsrb.serve import protocol
from gtsrb.serve.predictor import MAX_BATCH
from testkit.serve import REPO, hdr_bomb, launch, pings_within_2_s, recordio_body, running_server, slow_clients

MAX_RECORDS = 10_000  # protocol.MAX_RECORDS, the documented limit
BOMB_SIDE = 6500  # 42 megapixels: over the 40 M cap; OpenCV alone would take ~500 MB to decode it


def big_png(side: int = 1500) -> bytes:
    """A PNG that compresses to a few KB but takes milliseconds to decode and resize."""
    image = np.zeros((side, side, 3), np.uint8)
    image[::7] = 200
    return cv2.imencode(".png", image)[1].tobytes()


def copy_model(source: Path, target: Path) -> Path:
    """A copy of a model folder to break."""
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def error_lines(text: str) -> list[str]:
    """The lines of a server's output that report an error."""
    return [line for line in text.splitlines() if "ERROR" in line]


# --- settings and refusals that need no model (fast)

@pytest.mark.parametrize(("name", "value"), [
    (protocol.ENV_WORKERS, "two"), (protocol.ENV_MAX_PAYLOAD, "six"), (protocol.ENV_TIMEOUT, "60s"),
    (protocol.ENV_WORKERS, "0"), (protocol.ENV_MAX_PAYLOAD, "nan"), (protocol.ENV_PORT, "eighty"),
])
def test_a_malformed_sagemaker_setting_is_one_sentence(tiny_model_dir_stub: Path, tmp_path: Path, name: str, value: str) -> None:
    server = launch(tiny_model_dir_stub, tmp_path / "server.log", **{name: value})
    assert server.proc.wait(30) == 2
    (line,) = server.log.read_text().strip().splitlines()
    assert line.startswith(f"ERROR: {name}={value!r} is not a positive") and "or unset it." in line


@pytest.fixture
def tiny_model_dir_stub(tmp_path: Path) -> Path:
    """A folder that exists (settings are checked before the model is loaded)."""
    (tmp_path / "model").mkdir()
    return tmp_path / "model"


def test_opencv_refuses_to_decode_a_bomb_even_without_our_header_check() -> None:
    code = ("import gtsrb, cv2, numpy as np, sys; sys.path.insert(0, 'tests'); from testkit.serve import hdr_bomb\n"
            f"try:\n cv2.imdecode(np.frombuffer(hdr_bomb({BOMB_SIDE}), np.uint8), cv2.IMREAD_UNCHANGED); print('decoded')\n"
            "except cv2.error as err: print('refused', 'CV_IO_MAX_IMAGE_PIXELS' in str(err))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.stdout.strip() == "refused True", done.stdout + done.stderr


def test_formats_whose_size_cannot_be_read_first_are_refused() -> None:
    from gtsrb.common.image_input import decode_checked

    started = time.monotonic()
    image, reason = decode_checked(hdr_bomb(BOMB_SIDE))
    assert image is None and "not a format we read" in reason
    assert time.monotonic() - started < 2  # refused from the header: no decode


# --- a running server

@pytest.mark.slow
def test_slow_and_idle_clients_do_not_take_the_workers(server) -> None:
    with slow_clients(server.url):
        assert pings_within_2_s(server.url, 8) == [200] * 8


@pytest.mark.slow
def test_a_decompression_bomb_in_a_format_we_do_not_serve_is_a_400(server) -> None:
    started = time.monotonic()
    answer = server.post(hdr_bomb(BOMB_SIDE), "application/x-image")
    assert answer.status_code == 400 and "not a format we read" in answer.json()[protocol.ERROR_KEY]
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_too_many_records_is_a_413_naming_the_limit(server) -> None:
    pixel = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()  # ~70 bytes: ~1 MB in all
    body = recordio_body([pixel] * (MAX_RECORDS + 1))
    answer = server.post(body, protocol.RECORDIO_CONTENT_TYPE)
    assert answer.status_code == 413
    assert f"more than the {MAX_RECORDS} allowed" in answer.json()[protocol.ERROR_KEY]


@pytest.mark.slow
def test_a_chunked_body_is_answered_whole_or_refused(server, sample_images: list[bytes]) -> None:
    def chunks(body: bytes):  # a generator: requests sends Transfer-Encoding: chunked, no Content-Length
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    under = recordio_body([sample_images[i % 8] for i in range(2000)])
    answer = requests.post(f"{server.url}{protocol.INVOCATIONS_PATH}", data=chunks(under), timeout=60,
                           headers={"Content-Type": protocol.RECORDIO_CONTENT_TYPE})
    assert answer.status_code == 200 and len(answer.text.splitlines()) == 2000
    noise = np.random.default_rng(0).integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)
    over = recordio_body([cv2.imencode(".png", image)[1].tobytes() for image in noise])  # ~3 KB each: over 6 MB
    assert len(over) > protocol.DEFAULT_MAX_PAYLOAD_MB * 1024 * 1024
    answer = requests.post(f"{server.url}{protocol.INVOCATIONS_PATH}", data=chunks(over), timeout=60,
                           headers={"Content-Type": protocol.RECORDIO_CONTENT_TYPE})
    assert answer.status_code == 413 and "payload limit" in answer.json()[protocol.ERROR_KEY]  # never a cut batch


@pytest.mark.slow
def test_gunicorns_own_errors_are_json(server) -> None:
    answer = requests.get(f"{server.url}{protocol.PING_PATH}", headers={"X-Huge": "x" * 10000}, timeout=10)
    assert answer.status_code in (400, 431)
    assert answer.headers["Content-Type"] == protocol.JSON_CONTENT_TYPE
    assert answer.json()[protocol.ERROR_KEY]


@pytest.mark.slow
def test_a_request_past_the_time_limit_is_stopped_and_says_so(tiny_model: Path, tmp_path: Path) -> None:
    body = recordio_body([big_png()] * 600)  # seconds of decoding; 600 records x a few KB
    with running_server(tiny_model, tmp_path / "server.log", **{protocol.ENV_TIMEOUT: "1"}) as server:
        answer = server.post(body, protocol.RECORDIO_CONTENT_TYPE)
    assert answer.status_code == 504, answer.text[:200]
    message = answer.json()[protocol.ERROR_KEY]
    assert "1 s limit" in message and protocol.ENV_TIMEOUT in message
    answered = int(message.split("answered ")[1].split(" of 600 records")[0])
    assert answered < 600 and answered % MAX_BATCH == 0  # stopped at a batch boundary past the deadline


def test_records_are_decoded_and_predicted_a_batch_at_a_time(tiny_model: Path, sample_images: list[bytes]) -> None:
    from gtsrb.serve.predictor import Predictor

    predictor = Predictor.load(tiny_model)
    events: list[str] = []
    decode, infer = predictor.image_input, predictor.probabilities
    predictor.image_input = lambda raw: (events.append("decode"), decode(raw))[1]
    predictor.probabilities = lambda inputs: (events.append(f"infer {len(inputs)}"), infer(inputs))[1]
    count = 2 * MAX_BATCH + 5
    documents = predictor.predict([sample_images[i % 8] for i in range(count)])
    assert len(documents) == count
    compact = [e for i, e in enumerate(events) if e != "decode" or i == 0 or events[i - 1] != "decode"]
    assert compact == ["decode", f"infer {MAX_BATCH}", "decode", f"infer {MAX_BATCH}", "decode", "infer 5"]


# --- broken models: checked once, before the workers start

@pytest.mark.slow
@pytest.mark.parametrize(("breakage", "words"), [
    ("empty classes", "classes.json"),  # "lists no classes" (or, with class lists checked at load, "needs at least two")
    ("ten classes", "outputs 43 class scores but classes.json lists 10 classes"),
    ("truncated params", "the model files are corrupt"),
])
def test_a_broken_model_is_one_error_line_and_exit_2(tiny_model: Path, tmp_path: Path, breakage: str, words: str) -> None:
    broken = copy_model(tiny_model, tmp_path / "broken")
    if breakage == "empty classes":
        (broken / contract.CLASSES_FILE).write_text("[]")
    elif breakage == "ten classes":
        (broken / contract.CLASSES_FILE).write_text(json.dumps([f"c{i}" for i in range(10)]))
    else:
        params = broken / contract.PARAMS_FILE
        params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    server = launch(broken, tmp_path / "server.log")
    pings, deadline = [], time.monotonic() + 90
    while server.proc.poll() is None and time.monotonic() < deadline:
        try:
            pings.append(requests.get(f"{server.url}{protocol.PING_PATH}", timeout=2).status_code)
        except requests.ConnectionError:
            time.sleep(0.1)
    if server.proc.poll() is None:
        server.stop()
    output = server.log.read_text()
    assert server.proc.returncode == 2, output[-2000:]
    assert 200 not in pings
    assert "Traceback" not in output and "Booting worker" not in output  # no worker was started
    (line,) = error_lines(output)
    assert line.startswith("ERROR: ") and words in line and str(broken) in line


@pytest.mark.slow
def test_a_model_archive_is_unpacked_once_and_removed_at_exit(tiny_model: Path, tmp_path: Path, sample_images) -> None:
    archive = tmp_path / contract.MODEL_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for path in tiny_model.iterdir():
            tar.add(path, arcname=path.name)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    unpacked = lambda: sorted(p.name for p in scratch.iterdir())  # noqa: E731
    server = launch(archive, tmp_path / "server.log", TMPDIR=str(scratch))
    try:
        server.wait_ready()
        server.wait_all_loaded()
        assert len(unpacked()) == 1
        os.kill(min(server.worker_pids()), signal.SIGKILL)  # a dead worker is replaced: nothing new is unpacked
        deadline = time.monotonic() + 60
        while server.log.read_text().count("event=model_loaded") < 3:
            assert time.monotonic() < deadline, server.log.read_text()
            time.sleep(0.2)
        assert len(unpacked()) == 1
        assert server.post(sample_images[0], "image/png").status_code == 200
    finally:
        assert server.stop() == 0
    assert unpacked() == []


@pytest.mark.slow
def test_after_sigterm_the_port_refuses_while_the_last_request_finishes(tiny_model: Path, tmp_path: Path) -> None:
    body = recordio_body([big_png(800)] * 80)  # a second or two of work, well inside the graceful 20 s
    server = launch(tiny_model, tmp_path / "server.log")
    try:
        server.wait_ready()
        server.wait_all_loaded()
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(server.post, body, protocol.RECORDIO_CONTENT_TYPE)
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(1)
            port = int(server.url.rsplit(":", 1)[1])
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            assert in_flight.result().status_code == 200  # graceful: the request in flight is answered
    finally:
        if server.proc.poll() is None:
            assert server.stop() == 0


def test_make_serve_listens_on_this_machine_only_and_the_image_on_all_interfaces() -> None:
    from gtsrb.serve.cli import parse_args

    dry = subprocess.run(["make", "-n", "serve", "MODEL=somewhere"], cwd=REPO, capture_output=True, text=True, check=True)
    assert "--host 127.0.0.1 " in dry.stdout and "http://127.0.0.1:8080" in dry.stdout
    assert parse_args([]).host == "0.0.0.0"  # `docker run IMAGE serve`: SageMaker reaches it from outside


def test_predict_into_a_folder_is_one_sentence(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gtsrb.serve.predict", "tests/data/signs", "--model", "unused",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == (f"ERROR: --out {tmp_path} is a folder; name the CSV file to write "
                    f"(make predict OUT={tmp_path / 'predictions.csv'}).")


@pytest.mark.slow
def test_sigterm_while_the_model_is_checked_stops_cleanly(tiny_model: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    server = launch(tiny_model, tmp_path / "server.log", TMPDIR=str(scratch))
    time.sleep(1)  # the check process is importing MXNet
    assert "event=starting" not in server.log.read_text()
    assert server.stop(timeout=15) == 0
    assert list(scratch.iterdir()) == [] and "Traceback" not in server.log.read_text()
