"""Which SageMaker instance types the training image can run on, checked before anything is built.

The supported families are `gtsrb.train.gpu_families.FAMILY_NAMES` (the train step checks the
GPU with the same list). Not H100/H200/B200 (p5, p6 and newer), not K80 (p2, sm_37), not AMD or
Trainium/Inferentia, and not CPU-only instances (the CUDA build needs libcuda from a GPU
driver). A wrong type would otherwise fail (or hang) an hour into a paid job; here it fails when
the pipeline is built or started, naming what works.
"""

from __future__ import annotations

import re

from gtsrb.common.failure import StepError
from gtsrb.train.gpu_families import FAMILY_NAMES
from gtsrb.train.hyperparameters import Hyperparameters

# GPU families with local NVMe storage: SageMaker refuses a VolumeKmsKeyId there (the instance
# store is encrypted by the hardware); of the supported families only ml.p3 is EBS-only.
LOCAL_NVME_FAMILIES: tuple[str, ...] = ("ml.g4dn", "ml.g5", "ml.g6", "ml.g6e", "ml.p3dn", "ml.p4d", "ml.p4de")

# Families refused with a specific reason (anything else unknown is refused too).
_KNOWN_REASONS: dict[str, str] = {
    "ml.p5": "H100/H200 GPUs (sm_90) need kernels that mxnet-cu112 1.9.1 does not contain",
    "ml.p5e": "H200 GPUs (sm_90) need kernels that mxnet-cu112 1.9.1 does not contain",
    "ml.p5en": "H200 GPUs (sm_90) need kernels that mxnet-cu112 1.9.1 does not contain",
    "ml.p6": "Blackwell GPUs need kernels that mxnet-cu112 1.9.1 does not contain",
    "ml.p2": "K80 GPUs (sm_37) are older than the oldest architecture in mxnet-cu112 1.9.1 (sm_50)",
    "ml.g4ad": "AMD GPUs cannot run CUDA",
}


def family(instance_type: str) -> str:
    """`ml.g5.xlarge` -> `ml.g5`; `ml.p6-b200.48xlarge` -> `ml.p6`."""
    parts = instance_type.split(".")
    if len(parts) != 3 or parts[0] != "ml" or not parts[1] or not parts[2]:
        raise StepError(f"{instance_type!r} is not a SageMaker instance type (expected e.g. ml.g5.xlarge).")
    return f"ml.{parts[1].split('-')[0]}"


def check_training_instance_type(instance_type: str) -> str:
    """Return `instance_type` if the gpu training image can run on it, else raise StepError."""
    fam = family(instance_type)
    if fam in FAMILY_NAMES:
        return instance_type
    if fam in _KNOWN_REASONS:
        reason = _KNOWN_REASONS[fam]
    elif fam.startswith(("ml.p", "ml.g")):
        reason = "this GPU family is not known to run mxnet-cu112 1.9.1 (sm_50-sm_86 kernels, no PTX)"
    else:
        reason = "the training step runs the gpu image (mxnet-cu112), which needs an NVIDIA GPU"
    raise StepError(
        f"training instance type {instance_type} cannot run the training image: {reason}. "
        f"Choose one of the families {', '.join(FAMILY_NAMES)} (e.g. ml.g5.xlarge)."
    )


# Training instances one job may use: ps-lite runs a server per host and every worker talks to
# every server, so traffic grows with the square of the count; 8 is what the docs estimate for.
MAX_TRAINING_INSTANCES = 8


def check_training_instance_count(count: int, hp: Hyperparameters) -> int:
    """Return `count` if the train step can run these hyperparameters on that many instances, else StepError.

    batch_size is the global batch (every instance reads batch_size / count images per update, and
    every instance's worker trains on every count-th record, so the data never has fewer parts than
    hosts: a split with fewer records than one batch already fails in the train step); with
    batch_per_device the global batch follows the count instead. kvstore=nccl is one instance's."""
    if not 1 <= count <= MAX_TRAINING_INSTANCES:
        raise StepError(f"TrainingInstanceCount={count} must be between 1 and {MAX_TRAINING_INSTANCES} "
                        "(MXNet's parameter server, docs/training.md).")
    if count > 1 and hp.kvstore == "nccl":
        raise StepError(f"TrainingInstanceCount={count} cannot train with hyperparameter kvstore=nccl (one instance's "
                        "GPUs only; several instances use MXNet's parameter server): use kvstore=auto or one instance.")
    if not hp.batch_per_device and hp.batch_size % count:
        raise StepError(f"TrainingInstanceCount={count} cannot split BatchSize={hp.batch_size} (the global batch) "
                        f"evenly; use a BatchSize that is a multiple of {count}, or batch_per_device.")
    return count


def has_instance_storage(instance_type: str) -> bool:
    """True for types with local NVMe instance storage (g4dn/g5/g6, p3dn/p4d, any `d` type: m5d, c6id ...)."""
    size_free = family(instance_type).removeprefix("ml.")
    return family(instance_type) in LOCAL_NVME_FAMILIES or bool(re.fullmatch(r"[a-z]+[0-9]+[a-z]*d[a-z]*", size_free))


def processing_volume_kms_key(instance_type: str, volume_kms_key: str | None) -> str | None:
    """The volume key for a processing job, or None on an instance-storage type (SageMaker refuses
    the key there; the local storage is encrypted by the hardware)."""
    return None if has_instance_storage(instance_type) else volume_kms_key


def check_volume_kms_key(instance_type: str, volume_kms_key: str | None) -> None:
    """Refuse a training volume KMS key on an instance type with local NVMe storage (SageMaker would)."""
    if volume_kms_key and has_instance_storage(instance_type):
        raise StepError(
            f"volume_kms_key cannot be used with training instance type {instance_type}: it has local "
            "NVMe storage, which SageMaker encrypts itself and refuses a volume key for. Drop "
            "volume_kms_key or train on ml.p3 (EBS volumes)."
        )


# --- serving: which image a registered model package names, and where it may run -------------
# The cpu image carries the x86-64 CPU mxnet wheel: it serves on x86 CPU instances only (not on
# Graviton, ml.*g families, which are arm64; not on GPU instances, where the gpu image belongs).
SERVING_CPU_FAMILIES: tuple[str, ...] = ("ml.m5", "ml.m6i", "ml.m7i", "ml.c5", "ml.c6i", "ml.c7i", "ml.r5", "ml.r6i")
SERVING_FAMILIES: dict[str, tuple[str, ...]] = {"cpu": SERVING_CPU_FAMILIES, "gpu": FAMILY_NAMES}
# The model package names the cpu image (a tiny CNN: CPU instances serve it cheaply); one image
# per package, so every type listed must run it (tests/pipelines checks both lists against it).
SERVING_VARIANT = "cpu"
INFERENCE_INSTANCES: tuple[str, ...] = ("ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge", "ml.c6i.xlarge")
TRANSFORM_INSTANCES: tuple[str, ...] = ("ml.m5.xlarge", "ml.c5.xlarge", "ml.c5.2xlarge")


def check_serving_instance_type(variant: str, instance_type: str) -> str:
    """Return `instance_type` if the `variant` image serves on it, else raise StepError."""
    if family(instance_type) not in SERVING_FAMILIES[variant]:
        raise StepError(
            f"instance type {instance_type} cannot run the {variant} image's model server; "
            f"choose one of the families {', '.join(SERVING_FAMILIES[variant])}."
        )
    return instance_type
