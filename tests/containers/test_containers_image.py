"""The built CPU image itself: settings, code, entry points (needs `make test-containers`)."""

from __future__ import annotations

import json

import pytest

from testkit.containers import docker_run, run

pytestmark = pytest.mark.containers

REQUIRED_ENV = {
    "PYTHONUNBUFFERED": "1",
    "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
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
    # decided at run time from the driver (gtsrb.common.cuda), so the image must not fix them
    assert not {"MXNET_USE_FUSION", "MXNET_CUDNN_AUTOTUNE_DEFAULT"} & set(env)
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    # `docker run IMAGE train`: tini is PID 1 and forwards a spot interruption's SIGTERM to the group;
    # the shim keeps the toolkit waiting for the script (tests/containers/test_containers_sigterm.py)
    assert info["Config"]["Entrypoint"] == ["/usr/bin/tini", "-g", "--", "python3", "-m", "gtsrb.entrypoint"]
    history = run([docker, "history", "--no-trunc", "--format", "{{.CreatedBy}}", image]).stdout
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", ".dkr.ecr."):
        assert secret not in history and secret not in json.dumps(env)


# One container for all in-image checks: with the vfs storage driver each `docker run` copies the image.
PROBE = """
import json, pathlib, shutil, subprocess, sys
import mxnet, gluoncv, cv2, numpy, sagemaker_training, gtsrb.train.cli, gtsrb.evaluate, gtsrb.prepare
code = pathlib.Path('/opt/ml/code')
check = subprocess.run([sys.executable, '-m', 'pip', 'check'], capture_output=True, text=True)
print(json.dumps({'files': sorted(p.name for p in code.iterdir()), 'train': (code / 'train.py').read_text(),
                  'mxnet': mxnet.__version__, 'numpy': numpy.__version__, 'gtsrb': gtsrb.train.cli.__file__,
                  'train_entry_point': shutil.which('train'), 'python3': shutil.which('python3'),
                  'pip_check': check.returncode, 'pip_check_out': check.stdout}))
"""


@pytest.fixture(scope="module")
def probe(docker: str, image: str) -> dict:
    """What the image's own Python reports about its code and packages."""
    result = docker_run(docker, image, ["python3", "-c", PROBE])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_code_layout_and_python_stack(probe: dict) -> None:
    assert probe["files"] == ["train.py"]  # no requirements.txt: the toolkit would pip-install it
    assert probe["train"].splitlines() == ["from gtsrb.train.cli import main", "main()"]
    assert (probe["mxnet"], probe["numpy"]) == ("1.9.1", "1.23.5")
    assert probe["gtsrb"].startswith("/opt/venv/lib/python3.11/site-packages/gtsrb/")


def test_toolkit_entry_point_and_consistent_packages(probe: dict) -> None:
    assert probe["train_entry_point"] == "/opt/venv/bin/train"  # SageMaker runs `docker run IMAGE train`
    assert probe["python3"] == "/opt/venv/bin/python3"  # what the processing steps' `python3 -m` runs
    assert probe["pip_check"] == 0, probe["pip_check_out"]
