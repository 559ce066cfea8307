"""The built CPU image itself: settings, code, entry points (needs `make test-containers`)."""

from __future__ import annotations

import json

import pytest

from container_helpers import docker_run, run

pytestmark = pytest.mark.containers

REQUIRED_ENV = {
    "PYTHONUNBUFFERED": "1",
    "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
    "MXNET_CUDNN_AUTOTUNE_DEFAULT": "0",
    "MXNET_CUDNN_LIB_CHECKING": "0",
    "SAGEMAKER_PROGRAM": "train.py",
}


def inspect(docker: str, image: str) -> dict:
    """`docker image inspect` of the image."""
    result = run([docker, "image", "inspect", image])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_image_settings_platform_and_no_secrets(docker: str, image: str) -> None:
    info = inspect(docker, image)
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert {k: env.get(k) for k in REQUIRED_ENV} == REQUIRED_ENV
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    history = run([docker, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image]).stdout
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", ".dkr.ecr."):
        assert secret not in history and secret not in json.dumps(env)


def test_code_layout_and_python_stack(docker: str, image: str) -> None:
    script = (
        "import json, pathlib, mxnet, gluoncv, cv2, numpy, sagemaker_training, gtsrb.train.cli, gtsrb.evaluate;"
        "code = pathlib.Path('/opt/ml/code');"
        "print(json.dumps({'files': sorted(p.name for p in code.iterdir()), 'train': (code / 'train.py').read_text(),"
        " 'mxnet': mxnet.__version__, 'numpy': numpy.__version__, 'gtsrb': gtsrb.train.cli.__file__}))"
    )
    result = docker_run(docker, image, ["python3", "-c", script])
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["files"] == ["train.py"]  # no requirements.txt: the toolkit would pip-install it
    assert seen["train"].splitlines() == ["from gtsrb.train.cli import main", "main()"]
    assert (seen["mxnet"], seen["numpy"]) == ("1.9.1", "1.23.5")
    assert seen["gtsrb"].startswith("/opt/venv/lib/python3.11/site-packages/gtsrb/")


def test_toolkit_entry_point_is_on_path(docker: str, image: str) -> None:
    result = docker_run(docker, image, ["bash", "-c", "command -v train && pip check"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "/opt/venv/bin/train"
