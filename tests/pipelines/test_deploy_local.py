"""The local twin: approve and promote on a real MLflow registry; end to end demo -> approve ->
deploy-local -> request -> answer (slow: it trains the demo model; needs the serving branch's
`make serve` / `python -m gtsrb.serve`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.serve import protocol
from pipelines import graph
from pipelines.deploy import errors, local_twin
from pipelines.local import mlflow_registry as registry

REPO = Path(__file__).resolve().parents[2]
NAME = graph.MODEL_PACKAGE_GROUP


def twin(work: Path, *argv: str) -> int:
    """local_twin's entry point in this process; its exit code (0 when it returns)."""
    try:
        local_twin.main([*argv, "--work", str(work)])
    except SystemExit as exited:
        return exited.code
    return 0


def two_pending_versions(work: Path) -> Path:
    """WORK with a real MLflow registry holding versions 1 and 2, both pending approval."""
    client = registry.open_client(work)
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source=str(work / "model.tar.gz"), tags={registry.APPROVAL_TAG: graph.APPROVAL_STATUS})
    return work


@pytest.fixture
def registry_with_two_versions(tmp_path: Path) -> Path:
    """A fresh registry for a test that approves and promotes."""
    return two_pending_versions(tmp_path / "work")


@pytest.fixture(scope="module")
def untouched_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One registry shared by the tests that must not change it (an MLflow store takes seconds to create)."""
    return two_pending_versions(tmp_path_factory.mktemp("registry") / "work")


def test_approve_then_promote_points_the_stage_alias_at_the_newest_approved(registry_with_two_versions: Path, capsys) -> None:
    work = registry_with_two_versions
    assert twin(work, "promote", "--stage", "staging") == errors.EXIT_NO_VERSION
    assert "has no Approved version" in capsys.readouterr().err
    assert twin(work, "approve", "--version", "1") == 0
    assert twin(work, "promote", "--stage", "staging") == 0
    assert "alias models:/gtsrb-traffic-signs@staging -> version 1" in capsys.readouterr().out
    client = registry.open_client(work)
    assert str(client.get_model_version_by_alias(NAME, "staging").version) == "1"
    assert client.get_model_version(NAME, "2").tags[registry.APPROVAL_TAG] == graph.APPROVAL_STATUS
    assert twin(work, "approve", "--version", "2") == 0
    assert twin(work, "promote", "--stage", "staging") == 0
    assert str(client.get_model_version_by_alias(NAME, "staging").version) == "2"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["approve", "--version", "7"], errors.EXIT_NO_VERSION, "has no version 7 in"),
        (["approve", "--version", "one"], errors.EXIT_BAD_INPUT, "VERSION='one' is not a version number"),
        (["approve"], errors.EXIT_BAD_INPUT, "approve needs --version"),
        (["promote"], errors.EXIT_BAD_INPUT, "promote needs --stage"),
        (["path"], errors.EXIT_NO_VERSION, "no model version registered by"),  # WORK registered none
        (["path", "--model", f"models:/{NAME}@prod"], errors.EXIT_NO_VERSION, f"models:/{NAME}@prod: not in the registry"),
        (["path", "--model", "models:/only-a-name"], errors.EXIT_NO_VERSION, "not a registry URI"),
    ],
)
def test_bad_local_input_says_so(untouched_registry: Path, capsys, argv, code, message) -> None:
    assert twin(untouched_registry, *argv) == code
    assert message in capsys.readouterr().err


def test_path_resolves_a_registry_uri_on_the_host(untouched_registry: Path, capsys) -> None:
    """What make serve/predict hand the server: the registered model.tar.gz, or a path as given."""
    assert twin(untouched_registry, "path", "--model", f"models:/{NAME}/2") == 0
    assert capsys.readouterr().out.strip() == str(untouched_registry / "model.tar.gz")
    assert twin(untouched_registry, "path", "--model", "runs/x/model") == 0
    assert capsys.readouterr().out.strip() == "runs/x/model"


def test_no_registry_yet_says_run_make_demo(tmp_path: Path, capsys) -> None:
    assert twin(tmp_path / "work", "approve", "--version", "1") == errors.EXIT_NO_VERSION
    assert "no MLflow store yet; run make demo first" in capsys.readouterr().err


def test_make_serve_stage_serves_the_stage_alias() -> None:
    """`make serve STAGE=` turns the stage into the registry URI (the serve recipe is the serving branch's)."""
    def model_of(*args: str) -> str:
        return subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-model: ; @echo $(MODEL)", "print-model", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()

    assert model_of("STAGE=prod") == local_twin.model_uri("prod") == f"models:/{NAME}@prod"
    assert model_of("STAGE=prod", "MODEL=runs/x/model") == "runs/x/model"  # an explicit MODEL wins
    wrong = subprocess.run(["make", "-s", "serve", "STAGE=production"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "STAGE=production is not a stage: use one of prod staging" in wrong.stderr
    with pytest.raises(errors.DeployError, match="no such stage config"):
        local_twin.parse_args(["uri", "--stage", "production"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
    return result


@pytest.mark.slow
def test_demo_approve_deploy_local_answers_a_request(tmp_path: Path) -> None:
    work = tmp_path / "work"
    demo = subprocess.run([sys.executable, "-m", "pipelines.local", "--work", str(work), "--demo-size", "4", "4", "2",
                           "--threshold", "0.0", "--hp", "epochs=2"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert make("approve", "VERSION=1", f"WORK={work}").returncode == 0
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "deploy-local", "STAGE=staging",
                               f"WORK={work}", f"PORT={port}"], cwd=REPO, start_new_session=True)
    try:
        assert protocol.wait_until_ready(f"http://127.0.0.1:{port}", 180, alive=lambda: server.poll() is None), \
            "make deploy-local's server exited or did not answer /ping within 180 s"
        image = REPO / "tests" / "data" / "signs" / "class_14.png"
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", data=image.read_bytes(),
                               headers={"Content-Type": "image/png"}, timeout=60)
        assert answer.status_code == 200, answer.text
        predictions = protocol.parse_answer(answer.content, GTSRB_NUM_CLASSES)
        assert len(predictions) >= 1
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert str(registry.open_client(work).get_model_version_by_alias(NAME, "staging").version) == "1"
