"""Baked weights sit where training reads them: a stand-in zoo file baked offline (`download --from`)
through gtsrb.train.pretrained in the image, then found by the path training uses (no download here)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from testkit.containers import docker_run

pytestmark = pytest.mark.containers
NAME = "resnet18_v1b"
# gluoncv's sha1 table is the check; the stand-in's own sha1 takes the real entry's place in-process.
SCRIPT = f"""
import sys
from gluoncv.model_zoo import model_store
model_store._model_sha1[{NAME!r}] = sys.argv[1]
from gtsrb.train import pretrained
pretrained.main(["download", {NAME!r}, "--from", "/zoo"])
print("training reads", pretrained.imagenet_params_path({NAME!r}))
"""


def test_stand_in_baked_offline_is_found_by_training(docker: str, image: str, tmp_path: Path) -> None:
    content = b"stand-in weights"
    sha1 = hashlib.sha1(content).hexdigest()
    stem = f"{NAME}-{sha1[:8]}"
    with zipfile.ZipFile(tmp_path / f"{stem}.zip", "w") as zf:  # the zoo's own format
        zf.writestr(f"{stem}.params", content)
    result = docker_run(docker, image, ["python3", "-c", SCRIPT, sha1], {tmp_path: "/zoo:ro"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"training reads /opt/mxnet/models/{stem}.params" in result.stdout

    bad = docker_run(docker, image, ["python3", "-c", SCRIPT, sha1[:8] + "0" * 32], {tmp_path: "/zoo:ro"})
    assert bad.returncode != 0 and "its sha1 is not gluoncv's" in bad.stdout + bad.stderr
