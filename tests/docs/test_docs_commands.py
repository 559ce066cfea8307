"""Every command in the manuals' ```bash blocks is either run here, or named with why it cannot be.

`test_every_documented_command_is_accounted_for` (fast) extracts the commands (continuation
lines joined, comments dropped) and fails on a command that is in no list below, or on a list
entry no manual holds any more, so a new command in a manual needs a decision here.
`test_the_documented_commands_run` (slow, ~4-6 min) runs RUN's commands in the order a reader
does, on one WORK: the text of the manual, with `runs/demo` replaced by the test's WORK and
`localhost:8080` by a free port; `make demo` gets `HP=epochs=1 THRESHOLD=0` from the environment
(make's `?=` reads it) so that it trains one epoch instead of 24.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from testkit.pipelines import answers_200

REPO = Path(__file__).resolve().parents[2]
MANUALS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)

# Run by test_the_documented_commands_run, in this order; "&" marks a server started in the
# background (the following commands talk to it; it is stopped before the next server starts).
RUN: list[tuple[str, str]] = [
    ("make install", ""),
    ("make demo", ""),
    ("make serve", "&"),
    ("curl -s -H 'Content-Type: application/x-image' "
     "--data-binary @runs/demo/data/GTSRB/Final_Test/Images/00000.ppm localhost:8080/invocations", ""),
    ("make predict IMAGES=runs/demo/data/GTSRB/Final_Test/Images TOP_K=3", ""),
    (".venv/bin/python -m gtsrb.evaluate --model runs/demo/train/model --test runs/demo/prepare/test "
     "--output runs/demo/evaluation-again", ""),
    (".venv/bin/python -m gtsrb.train --train runs/demo/prepare/train --validation runs/demo/prepare/validation "
     "--model-dir runs/by-hand/model --checkpoint-dir runs/by-hand/checkpoints --preset cpu --epochs 3", ""),
    ("make approve VERSION=1 && make deploy-local STAGE=staging", "&"),
    ("curl -s -H 'Content-Type: image/png' --data-binary @tests/data/signs/class_14.png localhost:8080/invocations", ""),
    ("make approve VERSION=1", ""),
    ("make deploy-local STAGE=staging", "&"),
    ("make serve STAGE=staging", "&"),
    ("make ui", "&"),
    ("make definition", ""),
]
# Run by another test or by CI (the test or place that does).
OWN_DATA_TEST = "tests/pipelines/test_own_data.py: a 3-class folder set through make demo's module, predict and a server"
ELSEWHERE: dict[str, str] = {
    "make test": ".ci/run",
    "make test-fast": "a subset of make test (.ci/run)",
    "make lint": ".ci/run",
    ".venv/bin/python -m pytest tests/train -k resume -x": "tests/train/test_train_resume.py in make test",
    "make demo HP='epochs=3 image_size=32 model=mobilenetv3_small'":
        "HP= reaches the train step as in make demo above (HP=epochs=1); a 3-epoch mobilenetv3 run costs ~10 min here",
    ".venv/bin/pip install --no-deps -e . --config-settings editable_mode=strict":
        "reinstalls the project into the venv the other tests use; make install does the editable install",
    "make demo DATA=my-data": OWN_DATA_TEST,
    "make serve MODEL=runs/demo/train/model": OWN_DATA_TEST,
    "make predict IMAGES=some-photos/ MODEL=runs/demo/train/model": OWN_DATA_TEST,
    "make sagemaker-local": "Docker and compose: its command line in tests/pipelines/test_sagemaker_local.py (make -n), "
    "the run it starts in tests/containers/test_containers_sagemaker_local.py (make test-containers)",
    "make build VARIANT=cpu BAKE_WEIGHTS=0 && make sagemaker-local": "Docker and compose (make test-containers)",
    "make build VARIANT=cpu BAKE_WEIGHTS=0": "Docker (make test-containers builds it so)",
    "make transform LOCAL=1 INPUT=some-photos/ OUTPUT=runs/scored/ MODEL=runs/demo/train/model":
        "Docker and compose: tests/containers/test_containers_transform_local.py in make test-containers",
    "make transform LOCAL=1 INPUT=runs/demo/prepare/test/test.rec OUTPUT=runs/scored/ "
    "MODEL=models:/gtsrb-traffic-signs/1": "Docker and compose: tests/containers/test_containers_transform_local.py",
    ".venv/bin/python -m pipelines.sagemaker_local --tag TAG [--work DIR] [--data DIR] [--threshold X] [--hp k=v ...] "
    "[--instances N] [--demo-size T F N]": "a usage line, not a command; make sagemaker-local runs it (make test-containers)",
}
# Cannot run on a machine without AWS, Docker, a GPU or the full GTSRB download.
CANNOT: dict[str, str] = {
    "make demo DATA=~/GTSRB THRESHOLD=0.95": "the full GTSRB download (tests/pipelines runs the real sample instead)",
    "make build VARIANT=gpu": "Docker (make test-containers builds it)",
    "make gpu-target DATA=~/GTSRB": "a GPU",
    "make build": "Docker (make test-containers)",
    "make build VARIANT=cpu": "Docker (make test-containers)",
    'make push VARIANT="gpu cpu"': "AWS (ECR)",
    "make push REGISTRY=host:port": "Docker (make test-containers pushes to a local registry)",
    "make train-local": "Docker and a GPU",
    "make train-local VARIANT=cpu": "Docker (make test-containers)",
    "make pin-base": "Docker Hub",
    "make check-gpu-libs": "the GPU wheelhouse, several GB (make test-containers)",
    "make test-containers": "root and Docker (.ci/run)",
    "source <engine dir>/env && make test-containers": "a Docker engine set up already (.ci/run starts its own)",
    "export REGION=eu-west-1 ROLE_ARN=arn:aws:iam::123456789012:role/SageMakerExecutionRole": "AWS",
    "aws s3 sync GTSRB/ s3://sagemaker-$REGION-123456789012/gtsrb/raw/": "AWS",
    'make build push VARIANT="gpu cpu" AWS_REGION=$REGION': "Docker and AWS",
    "make upsert": "AWS (tests/pipelines upserts against moto)",
    "make preflight": "AWS (tests/pipelines/test_preflight.py runs it against moto's server)",
    "make bench-gpu": "a GPU (make test-containers runs the same module in the CPU image)",
    "make bench-gpu BENCH_ENV=MXNET_CUDNN_AUTOTUNE_DEFAULT=0": "a GPU",
    "aws s3 mb s3://sagemaker-$REGION-123456789012 --region $REGION": "AWS",
    "aws s3 sync my-data s3://my-bucket/datasets/my-data/": "AWS",
    ".venv/bin/python -m pipelines.sagemaker.run_pipeline --role-arn \"$ROLE_ARN\" --kwargs '{\"region\": \"eu-west-1\"}' --start "
    "--parameters '{\"InputDataUrl\": \"s3://my-bucket/datasets/my-data\", \"DataVersion\": \"my-data-v1\"}'":
        "AWS (tests/pipelines runs run-pipeline against moto)",
    "make transform INPUT=s3://my-bucket/photos/ OUTPUT=s3://my-bucket/scored/ "
    "ROLE_ARN=arn:aws:iam::<account>:role/<role> REGION=eu-west-1": "AWS (tests/pipelines/test_transform.py against moto)",
    "make transform INPUT=s3://my-bucket/prepared/test/test.rec OUTPUT=s3://my-bucket/scored/ ROLE_ARN=... "
    "PACKAGE_ARN=<a version> WAIT_MINUTES=60": "AWS (tests/pipelines/test_transform.py against moto)",
    "make sagemaker-local DATA=~/GTSRB THRESHOLD=0.95 HP='epochs=5 max_train_images=100000' INSTANCES=1":
        "the full GTSRB download and Docker",
    "make upsert START=1 WAIT_MINUTES=180": "AWS (tests/pipelines starts against moto)",
    'run-pipeline --role-arn $ROLE_ARN --kwargs "{\\"region\\": \\"$REGION\\", \\"role\\": \\"$ROLE_ARN\\", '
    '\\"image_tag\\": \\"$(git rev-parse --short HEAD)\\"}" --start --parameters '
    '\'{"Epochs": 20, "TrainingInstanceType": "ml.g6.xlarge"}\' --wait-minutes 0': "AWS (tests/pipelines runs run-pipeline against moto)",
}


def commands(text: str) -> list[str]:
    """The commands of a manual's ```bash blocks: continuations joined, comments and blank lines dropped."""
    found = []
    for block in BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # a comment after the command
            if line and not line.startswith("#"):
                found.append(re.sub(r"\s+", " ", line))
    return found


def documented() -> dict[str, str]:
    """command -> the first manual that holds it."""
    found: dict[str, str] = {}
    for manual in MANUALS:
        for command in commands(manual.read_text(encoding="utf-8")):
            found.setdefault(command, manual.name)
    return found


def test_every_documented_command_is_accounted_for() -> None:
    docs = documented()
    known = {command for command, _ in RUN} | set(ELSEWHERE) | set(CANNOT)
    unknown = sorted(f"{manual}: {command}" for command, manual in docs.items() if command not in known)
    assert not unknown, f"commands no test runs or names (add them to RUN, ELSEWHERE or CANNOT): {unknown}"
    stale = sorted(known - set(docs))
    assert not stale, f"listed commands no manual holds any more: {stale}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Reader:
    """Runs the manuals' commands as a reader would, on the test's WORK."""

    def __init__(self, tmp: Path) -> None:
        self.work = tmp / "runs" / "demo"
        self.port, self.ui_port = free_port(), free_port()
        self.env = {**os.environ, "WORK": str(self.work), "HP": "epochs=1", "THRESHOLD": "0", "PORT": str(self.port),
                    "UI_PORT": str(self.ui_port), "DEFINITION": str(tmp / "definition.json")}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.server: subprocess.Popen | None = None
        self.by_hand = tmp / "by-hand"

    def text(self, command: str) -> str:
        """The command as run: the test's WORK and port; make never reinstalls the venv."""
        command = command.replace("runs/demo", str(self.work)).replace("runs/by-hand", str(self.by_hand))
        return command.replace("localhost:8080", f"localhost:{self.port}").replace("make ", "make -o .venv/.installed ")

    def run(self, command: str) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", "-c", self.text(command)], cwd=REPO, env=self.env, capture_output=True, text=True,
                              timeout=1200)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def start(self, command: str) -> None:
        self.stop()
        self.server = subprocess.Popen(["bash", "-c", self.text(command)], cwd=REPO, env=self.env, start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        is_ui = command == "make ui"
        url = f"http://127.0.0.1:{self.ui_port}/" if is_ui else f"http://127.0.0.1:{self.port}/ping"
        assert answers_200(url, 300, alive=lambda: self.server.poll() is None), f"{command}: {url} did not answer"

    def stop(self) -> None:
        if self.server is not None:
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait(timeout=60)
            self.server = None


@pytest.mark.slow
def test_the_documented_commands_run(tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    outputs = {}
    try:
        for command, mode in RUN:
            if mode == "&":
                reader.start(command)
            else:
                outputs[command] = reader.run(command).stdout
    finally:
        reader.stop()
        shutil.rmtree(tmp_path / "runs" / "mlartifacts", ignore_errors=True)
    answers = [out for command, out in outputs.items() if command.startswith("curl")]
    assert len(answers) == 2 and all(out.startswith('{"predictions": [{"class_id": ') for out in answers), answers
    assert "accuracy " in outputs["make predict IMAGES=runs/demo/data/GTSRB/Final_Test/Images TOP_K=3"]
    assert (reader.work / "predictions.csv").is_file() and (reader.work / "evaluation-again" / "evaluation.json").is_file()
    assert (reader.by_hand / "model" / "history.json").is_file() and (tmp_path / "definition.json").is_file()
