"""The CPU image answers SageMaker's hosting contract: `docker run IMAGE serve` with a model at
/opt/ml/model, /ping, real images, a RecordIO batch under SAGEMAKER_BATCH=true, bad content types,
and `docker stop` ending it cleanly well inside SageMaker's 30 s."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.recordio_format import IndexedRecordWriter, image_record
from gtsrb.serve import protocol
from testkit.containers import real_images, run

pytestmark = pytest.mark.containers
PING_WITHIN_SECONDS = 240  # SageMaker waits 4 minutes for the first healthy /ping


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model as the train step writes it (SageMaker unpacks model.tar.gz to this)."""
    from gtsrb.common.classes import GTSRB_CLASS_NAMES
    from testkit.evaluate import save_tiny_model, train_tiny_net

    return save_tiny_model(tmp_path_factory.mktemp("hosted") / "model", train_tiny_net(len(GTSRB_CLASS_NAMES)))


@pytest.fixture(scope="module")
def container(docker: str, image: str, model_dir: Path):
    """`docker run IMAGE serve` in batch-transform mode on a free port (SAGEMAKER_BIND_TO_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"gtsrb-serve-{uuid.uuid4().hex[:8]}"
    started = run([docker, "run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
                   "-e", "SAGEMAKER_BATCH=true", "-e", "SAGEMAKER_MAX_PAYLOAD_IN_MB=20",
                   "-v", f"{model_dir}:/opt/ml/model:ro", image, "serve"])
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        yield name, url
    finally:
        run([docker, "rm", "-f", name])


def wait_for_ping(docker: str, name: str, url: str) -> float:
    """Seconds until /ping answered 200."""
    start = time.monotonic()
    while time.monotonic() - start < PING_WITHIN_SECONDS:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return time.monotonic() - start
        except requests.RequestException:
            time.sleep(0.5)
    logs = run([docker, "logs", name])
    raise AssertionError(f"/ping not 200 within {PING_WITHIN_SECONDS} s:\n{logs.stdout}{logs.stderr}")


def test_the_image_declares_port_and_bind_to_port(docker: str, image: str) -> None:
    config = json.loads(run([docker, "image", "inspect", image]).stdout)[0]["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "8080/tcp" in config["ExposedPorts"]


def test_serve_answers_the_hosting_contract(docker: str, container, tmp_path: Path) -> None:
    name, url = container
    wait_for_ping(docker, name, url)
    images = real_images()
    for image in images:
        answer = requests.post(f"{url}/invocations", data=image, headers={"Content-Type": "application/x-image"}, timeout=30)
        assert answer.status_code == 200, answer.text
        protocol.parse_answer(answer.content, GTSRB_NUM_CLASSES)
    idx, rec = tmp_path / "batch.idx", tmp_path / "batch.rec"
    writer = IndexedRecordWriter(idx, rec)
    for i, image in enumerate(images):
        writer.write_idx(i, image_record(0, i, image))
    writer.close()
    batch = requests.post(f"{url}/invocations", data=rec.read_bytes(),
                          headers={"Content-Type": protocol.RECORDIO_CONTENT_TYPE}, timeout=60)
    assert batch.status_code == 200
    assert len(batch.text.splitlines()) == len(images)
    assert requests.get(f"{url}/execution-parameters", timeout=5).json()["MaxPayloadInMB"] == 20
    bad = requests.post(f"{url}/invocations", data=b"a,b", headers={"Content-Type": "text/csv"}, timeout=10)
    assert bad.status_code == 415 and protocol.ERROR_KEY in bad.json()
    junk = requests.post(f"{url}/invocations", data=b"junk", headers={"Content-Type": "image/jpeg"}, timeout=10)
    assert junk.status_code == 400


def test_ping_answers_while_slow_clients_trickle(docker: str, container) -> None:
    from testkit.serve import pings_within_2_s, slow_clients

    name, url = container
    wait_for_ping(docker, name, url)
    with slow_clients(url):
        assert pings_within_2_s(url, 8) == [200] * 8


def test_docker_stop_exits_cleanly_within_30_seconds(docker: str, container) -> None:
    name, url = container
    wait_for_ping(docker, name, url)
    start = time.monotonic()
    stopped = run([docker, "stop", "-t", "30", name], timeout=60)
    seconds = time.monotonic() - start
    assert stopped.returncode == 0
    state = json.loads(run([docker, "inspect", name]).stdout)[0]["State"]
    assert seconds < 30 and state["ExitCode"] == 0, (seconds, state, run([docker, "logs", name]).stderr[-2000:])
