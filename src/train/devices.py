"""Where training runs: all visible GPUs (data parallel), the CPU, or N CPU contexts (`devices=cpu:N`:
the same data-parallel code as several GPUs, so it runs in tests), and the GPU capability check.

Which GPUs the installed MXNet can run is in `gtsrb.train.gpu_families`; we check every GPU
before training and fail with a sentence instead of a CUDA error or a hang.
"""

from __future__ import annotations

import ctypes
import logging
import re

import mxnet as mx

from gtsrb.common import cuda
from gtsrb.common.failure import StepError
from gtsrb.train.gpu_families import BUILT_ARCHITECTURES, SUPPORTED_TEXT, is_supported

log = logging.getLogger(__name__)

_DEVICES = re.compile(r"^(?:auto|cpu(?::([1-9][0-9]*))?)$")  # the `devices` hyperparameter
_CC_MAJOR, _CC_MINOR = 75, 76  # CUdevice_attribute values of the CUDA driver API


def check_capabilities(devices: list[tuple[str, tuple[int, int]]]) -> None:
    """Fail with one sentence if any (name, capability) GPU cannot run the installed MXNet."""
    for name, capability in devices:
        if not is_supported(capability):
            built = ", ".join(f"sm_{a}{b}" for a, b in BUILT_ARCHITECTURES)
            raise StepError(
                f"GPU {name} has compute capability {capability[0]}.{capability[1]}, which MXNet 1.9.1 "
                f"was not built for ({built}, no PTX): use one of {SUPPORTED_TEXT}, not ml.p5 or newer."
            )


def gpu_capabilities(count: int) -> list[tuple[str, tuple[int, int]]]:
    """(name, compute capability) of the first `count` GPUs, read from the CUDA driver."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as err:
        raise StepError(f"{count} GPU(s) are reported but the CUDA driver cannot be loaded ({err}).") from err
    _cuda_call(cuda.cuInit(0), "cuInit")
    found = []
    for index in range(count):
        device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        _cuda_call(cuda.cuDeviceGet(ctypes.byref(device), index), "cuDeviceGet")
        _cuda_call(cuda.cuDeviceGetName(name, 256, device), "cuDeviceGetName")
        _cuda_call(cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device), "cuDeviceGetAttribute")
        _cuda_call(cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device), "cuDeviceGetAttribute")
        found.append((name.value.decode(errors="replace"), (major.value, minor.value)))
    return found


def _cuda_call(status: int, what: str) -> None:
    """Turn a CUDA driver error code into a StepError."""
    if status != 0:
        raise StepError(f"the CUDA driver failed in {what} (error {status}); is the GPU healthy?")


def parse_devices(spec: str) -> int | None:
    """The N of `cpu:N` (or `cpu`: 1), None for `auto`; anything else fails naming the key."""
    match = _DEVICES.match(spec)
    if not match:
        raise StepError(f"hyperparameter devices={spec!r} is invalid: it must be auto, cpu or cpu:N (N >= 1).")
    if spec == "auto":
        return None
    return int(match.group(1) or 1)


def training_contexts(num_gpus: int, spec: str = "auto") -> list[mx.Context]:
    """`cpu:N` -> N CPU contexts; `auto` -> all GPUs after the capability check, else [mx.cpu()]."""
    cpus = parse_devices(spec)
    if cpus is not None:
        log.info("event=devices cpus=%d", cpus)
        return [mx.cpu(i) for i in range(cpus)]
    if num_gpus <= 0:
        return [mx.cpu()]
    available = cuda.gpu_count()  # checks the driver and sets fusion/autotune before the first GPU kernel
    if available < num_gpus:
        raise StepError(f"{num_gpus} GPU(s) requested (SM_NUM_GPUS) but MXNet sees {available}; is this the GPU image?")
    devices = gpu_capabilities(num_gpus)
    check_capabilities(devices)
    log.info("event=devices gpus=%d names=%s", num_gpus, ",".join(name for name, _ in devices))
    return [mx.gpu(i) for i in range(num_gpus)]
