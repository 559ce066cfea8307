"""MXNet's GPU settings decided from the driver (gtsrb.common.cuda), with fake driver versions: there is
no GPU here, so the driver's answer (cuDriverGetVersion) and MXNet's GPU count are stand-ins."""

from __future__ import annotations

import os

import mxnet as mx
import pytest

from gtsrb.common import cuda
from gtsrb.common.failure import StepError

SETTINGS = ("MXNET_USE_FUSION", "MXNET_CUDNN_AUTOTUNE_DEFAULT", "MXNET_CUDNN_LIB_CHECKING")


@pytest.fixture
def driver(monkeypatch: pytest.MonkeyPatch):
    """Set the fake driver's CUDA version and MXNet's GPU count; the settings start unset."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)

    def install(version: int | None, gpus: int = 1) -> None:
        monkeypatch.setattr(cuda, "driver_cuda_version", lambda: version)
        monkeypatch.setattr(mx.context, "num_gpus", lambda: gpus)

    return install


@pytest.mark.parametrize(("version", "fusion"), [(11000, "0"), (11040, "0"), (11070, "0"), (11080, "1"), (12020, "1")])
def test_fusion_only_where_the_driver_loads_nvrtc_11_8_ptx(version: int, fusion: str) -> None:
    assert cuda.gpu_settings(version) == {"MXNET_USE_FUSION": fusion, "MXNET_CUDNN_AUTOTUNE_DEFAULT": "1",
                                          "MXNET_CUDNN_LIB_CHECKING": "0"}


def test_gpu_count_applies_the_settings_of_the_driver(driver, monkeypatch: pytest.MonkeyPatch) -> None:
    driver(11040, gpus=1)  # a 470 driver (CUDA 11.4)
    assert cuda.gpu_count() == 1
    assert (os.environ["MXNET_USE_FUSION"], os.environ["MXNET_CUDNN_AUTOTUNE_DEFAULT"]) == ("0", "1")
    monkeypatch.setenv("MXNET_CUDNN_AUTOTUNE_DEFAULT", "0")  # the run book's A/B: the user's value wins
    monkeypatch.delenv("MXNET_USE_FUSION")
    driver(12020, gpus=1)
    assert cuda.gpu_count() == 1
    assert (os.environ["MXNET_USE_FUSION"], os.environ["MXNET_CUDNN_AUTOTUNE_DEFAULT"]) == ("1", "0")


def test_a_too_old_driver_gets_a_sentence_not_a_cuda_error(driver) -> None:
    driver(10020)
    with pytest.raises(StepError) as refused:
        cuda.gpu_count()
    assert str(refused.value).startswith("the NVIDIA driver supports CUDA 10.2, but this image's MXNet (mxnet-cu112")
    assert "driver >= 450.80.02" in str(refused.value)


def test_mxnet_failing_to_count_gpus_becomes_one_sentence(driver, monkeypatch: pytest.MonkeyPatch) -> None:
    driver(11040)

    def broken() -> int:
        raise mx.base.MXNetError("[12:00:00] src/c_api.cc: CUDA: CUDA driver version is insufficient\nStack trace: ...")

    monkeypatch.setattr(mx.context, "num_gpus", broken)
    with pytest.raises(StepError, match=r"MXNet cannot use the GPUs with this driver \(CUDA 11.4\): \[12:00:00\]"):
        cuda.gpu_count()


def test_no_driver_means_no_gpu_and_no_settings(driver) -> None:
    assert cuda.driver_cuda_version() is None  # this machine has no NVIDIA driver
    driver(None, gpus=3)
    assert cuda.gpu_count() == 0 and not set(SETTINGS) & set(os.environ)
