"""The NVIDIA driver and MXNet's GPU settings, decided from the driver at run time (train, evaluate, serve).

The image pins mxnet-cu112 1.9.1 with the CUDA 11.8 runtime libraries from PyPI, so:
- the driver must support CUDA 11.0 or newer (driver >= 450.80.02, CUDA's minor-version
  compatibility); an older one makes `mx.context.num_gpus()` fail with a raw CUDA error, so we
  read the driver's CUDA version first (cuDriverGetVersion) and say it in one sentence;
- MXNet fuses pointwise operators at run time by compiling PTX with the pinned nvrtc 11.8; a driver
  older than CUDA 11.8 (< 520, e.g. 470) cannot load that PTX. Fusion is therefore on exactly when
  the driver supports CUDA 11.8 (MXNET_USE_FUSION);
- cuDNN autotune (MXNET_CUDNN_AUTOTUNE_DEFAULT=1, MXNet's default) picks the fastest convolution
  algorithms in the first steps. It was turned off on reports of hangs with mxnet-cu112 1.8.0 on
  Ampere (apache/mxnet#20346); on 1.9.1 it is on, with an A/B in docs/gpu-runbook.md;
- MXNET_CUDNN_LIB_CHECKING=0 quiets a warning about cuDNN 8.9 being newer than the build's.
A variable set by the user (docker run -e, SageMaker Environment) wins over these choices.
"""

from __future__ import annotations

import ctypes
import logging
import os

from gtsrb.common.failure import StepError

log = logging.getLogger(__name__)

MIN_DRIVER_CUDA = 11000  # cuDriverGetVersion of the oldest driver the CUDA 11 runtime accepts
FUSION_DRIVER_CUDA = 11080  # the driver must load PTX of nvrtc 11.8


def cuda_text(version: int) -> str:
    """cuDriverGetVersion's number as CUDA writes it: 11080 -> 11.8."""
    return f"{version // 1000}.{version % 1000 // 10}"


def driver_cuda_version() -> int | None:
    """The CUDA version the installed driver supports (e.g. 12020), None without a driver."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int()
    if cuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value


def check_driver(version: int) -> None:
    """Fail with one sentence when the driver is too old for the image's CUDA 11 runtime."""
    if version < MIN_DRIVER_CUDA:
        raise StepError(f"the NVIDIA driver supports CUDA {cuda_text(version)}, but this image's MXNet (mxnet-cu112, "
                        f"CUDA 11.8 libraries) needs a driver for CUDA {cuda_text(MIN_DRIVER_CUDA)} or newer "
                        "(driver >= 450.80.02): update the driver, or use a current SageMaker GPU instance.")


def gpu_settings(version: int) -> dict[str, str]:
    """MXNet's GPU environment for a driver supporting CUDA `version` (see the module docstring)."""
    return {
        "MXNET_USE_FUSION": "1" if version >= FUSION_DRIVER_CUDA else "0",
        "MXNET_CUDNN_AUTOTUNE_DEFAULT": "1",
        "MXNET_CUDNN_LIB_CHECKING": "0",
    }


def gpu_count() -> int:
    """GPUs MXNet can use (0 without a driver), after checking the driver and applying gpu_settings;
    call it before the first GPU kernel runs."""
    import mxnet as mx

    version = driver_cuda_version()
    if version is None:
        return 0
    check_driver(version)
    for key, value in gpu_settings(version).items():
        os.environ.setdefault(key, value)
    try:
        count = mx.context.num_gpus()
    except mx.base.MXNetError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StepError(f"MXNet cannot use the GPUs with this driver (CUDA {cuda_text(version)}): {first}") from None
    if count:
        log.info("event=cuda driver_cuda=%s fusion=%s autotune=%s", cuda_text(version), os.environ["MXNET_USE_FUSION"],
                 os.environ["MXNET_CUDNN_AUTOTUNE_DEFAULT"])
    return count
