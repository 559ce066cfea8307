"""The built GPU image (make test-containers builds it; no GPU here): its libraries, including the
ones opened with dlopen, its GPU settings, and the weights folder training reads."""

from __future__ import annotations

import json
import os

import pytest

from testkit.containers import CONTAINERS, run

pytestmark = pytest.mark.containers


@pytest.fixture(scope="module")
def gpu_image() -> str:
    return os.environ.get("GTSRB_TEST_GPU_IMAGE") or pytest.skip("needs the GPU image: run `make test-containers`")


def test_libraries_resolve_in_the_built_image_including_dlopened(docker: str, gpu_image: str) -> None:
    script = CONTAINERS / "check_gpu_libs.py"
    result = run([docker, "run", "--rm", "--network", "none", "-v", f"{script}:/opt/check_gpu_libs.py:ro", gpu_image,
                  "python3", "/opt/check_gpu_libs.py"], timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    for soname in ("libcudnn_cnn_infer.so.8", "libcudnn_ops_train.so.8", "libnvrtc-builtins.so.11.8"):
        assert f"{soname} => /opt/venv/lib/python3.11/site-packages/nvidia/" in result.stdout, result.stdout
    assert "0 problem(s)" in result.stdout


def test_a_missing_cuda_library_is_reported(docker: str, gpu_image: str) -> None:
    script = CONTAINERS / "check_gpu_libs.py"
    hide_nccl = "rm -r /opt/venv/lib/python3.11/site-packages/nvidia/nccl && ldconfig && python3 /opt/check_gpu_libs.py"
    result = run([docker, "run", "--rm", "--network", "none", "-v", f"{script}:/opt/check_gpu_libs.py:ro", gpu_image,
                  "bash", "-c", hide_nccl], timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "PROBLEM libnccl.so.2: not found" in result.stderr
    assert "libcudnn.so.8 => /opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib/" in result.stdout


def test_gpu_settings_and_the_weights_folder(docker: str, gpu_image: str, image: str) -> None:
    envs = []
    for ref in (gpu_image, image):
        info = json.loads(run([docker, "image", "inspect", ref]).stdout)[0]
        envs.append(dict(item.split("=", 1) for item in info["Config"]["Env"]))
    gpu, cpu = envs
    assert gpu["NVIDIA_VISIBLE_DEVICES"] == "all" and "NVIDIA_VISIBLE_DEVICES" not in cpu
    assert "MXNET_USE_FUSION" not in gpu  # decided from the driver at run time (gtsrb.common.cuda)
    assert gpu["MXNET_HOME"] == cpu["MXNET_HOME"]  # where the CPU-wheel stage bakes and training reads
    listed = run([docker, "run", "--rm", "--network", "none", gpu_image, "test", "-d", f"{gpu['MXNET_HOME']}/models"])
    assert listed.returncode == 0, listed.stderr
