"""The one list of supported GPU families agrees with the architectures MXNet was built for,
and both consumers (the train step's GPU check, the pipeline's instance guard) use it."""

from __future__ import annotations

import pytest

from gtsrb.common.failure import StepError
from gtsrb.train import devices
from gtsrb.train.gpu_families import FAMILY_NAMES, SUPPORTED_FAMILIES, is_supported
from pipelines import instances


@pytest.mark.parametrize("gpu", SUPPORTED_FAMILIES, ids=lambda f: f.family)
def test_every_supported_family_runs_the_built_architectures(gpu) -> None:
    assert is_supported(gpu.capability)
    devices.check_capabilities([(gpu.gpu, gpu.capability)])  # raises if the train step would refuse it
    assert instances.check_training_instance_type(f"{gpu.family}.xlarge") == f"{gpu.family}.xlarge"


@pytest.mark.parametrize("instance_type", ["ml.p5.48xlarge", "ml.p2.xlarge", "ml.m5.xlarge"])
def test_the_guard_names_the_supported_families(instance_type: str) -> None:
    with pytest.raises(StepError, match=", ".join(FAMILY_NAMES)):
        instances.check_training_instance_type(instance_type)


def test_the_gpu_check_names_the_supported_families() -> None:
    with pytest.raises(StepError, match=r"ml\.p3 \(V100\).*ml\.g6e \(L40S\)"):
        devices.check_capabilities([("H100", (9, 0))])
