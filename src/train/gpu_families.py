"""Which GPUs the training image's MXNet can run on: the one list of supported instance families.

The mxnet-cu112 1.9.1 wheel carries machine code (SASS) for sm_50, 60, 70, 80 and 86 and no PTX
to compile from. A GPU runs SASS built for the same major version and a minor version <= its
own, so sm_89 (L4, L40S) runs the sm_86 code, while Hopper (sm_90, ml.p5) and newer and Kepler
(sm_37, ml.p2) cannot run it at all. The train step checks the GPU with this list
(`gtsrb.train.devices`), the pipeline checks the training instance type with it
(`pipelines.instances`), and tests/docs checks the README's table against it. No MXNet import
here: the CI runner imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass

# SASS architectures in the installed MXNet GPU wheel (mxnet-cu112 1.9.1).
BUILT_ARCHITECTURES: tuple[tuple[int, int], ...] = ((5, 0), (6, 0), (7, 0), (8, 0), (8, 6))


@dataclass(frozen=True)
class GpuFamily:
    """A SageMaker instance family (the part before the size) and the GPU it carries."""

    family: str  # e.g. "ml.g5"
    gpu: str  # e.g. "A10G"
    capability: tuple[int, int]  # CUDA compute capability of that GPU


SUPPORTED_FAMILIES: tuple[GpuFamily, ...] = (
    GpuFamily("ml.p3", "V100", (7, 0)),
    GpuFamily("ml.p3dn", "V100", (7, 0)),
    GpuFamily("ml.g4dn", "T4", (7, 5)),
    GpuFamily("ml.g5", "A10G", (8, 6)),
    GpuFamily("ml.p4d", "A100", (8, 0)),
    GpuFamily("ml.p4de", "A100", (8, 0)),
    GpuFamily("ml.g6", "L4", (8, 9)),
    GpuFamily("ml.g6e", "L40S", (8, 9)),
)

FAMILY_NAMES: tuple[str, ...] = tuple(f.family for f in SUPPORTED_FAMILIES)
# For error messages: "ml.p3 (V100), ml.p3dn (V100), ml.g4dn (T4), ..."
SUPPORTED_TEXT = ", ".join(f"{f.family} ({f.gpu})" for f in SUPPORTED_FAMILIES)


def is_supported(capability: tuple[int, int], built: tuple[tuple[int, int], ...] = BUILT_ARCHITECTURES) -> bool:
    """True if SASS built for one of `built` runs on a GPU of this compute capability."""
    major, minor = capability
    return any(b_major == major and b_minor <= minor for b_major, b_minor in built)
