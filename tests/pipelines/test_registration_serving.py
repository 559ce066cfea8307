"""The registered model package can be deployed: its image serves on every instance type it lists,
and it declares exactly the content types the model server accepts (src/serve/protocol.py)."""

from __future__ import annotations

import pytest

from gtsrb.common.failure import StepError
from gtsrb.serve import protocol
from pipelines import graph, images, instances
from testkit.pipelines import IMAGE_TAG


def package_spec(definition: dict) -> dict:
    """The RegisterModel step's InferenceSpecification."""
    (step,) = [s for s in definition["Steps"] if s["Name"] == graph.REGISTER] or [
        s for c in definition["Steps"] if c["Type"] == "Condition" for s in c["Arguments"]["IfSteps"] if s["Name"] == graph.REGISTER
    ]
    return step["Arguments"]["InferenceSpecification"]


def variant_of(image_uri: str) -> str:
    """Which of our image variants an image URI names."""
    repository = image_uri.rsplit("/", 1)[-1].split(":")[0]
    (variant,) = [v for v in images.VARIANTS if images.repository(v) == repository]
    return variant


def test_the_package_image_serves_on_every_listed_instance_type(offline_definition: dict) -> None:
    spec = package_spec(offline_definition)
    (container,) = spec["Containers"]
    assert container["Image"].endswith(f":{IMAGE_TAG}")
    variant = variant_of(container["Image"])
    listed = spec["SupportedRealtimeInferenceInstanceTypes"] + spec["SupportedTransformInstanceTypes"]
    assert spec["SupportedTransformInstanceTypes"] and spec["SupportedRealtimeInferenceInstanceTypes"]
    for instance_type in listed:
        instances.check_serving_instance_type(variant, instance_type)  # raises for a type it cannot run on


def test_the_package_declares_what_the_server_accepts(offline_definition: dict) -> None:
    spec = package_spec(offline_definition)
    assert sorted(spec["SupportedContentTypes"]) == sorted(protocol.REQUEST_CONTENT_TYPES)
    assert protocol.RECORDIO_CONTENT_TYPE in spec["SupportedContentTypes"]  # batch transform, SplitType=RecordIO
    assert sorted(spec["SupportedResponseMIMETypes"]) == sorted(protocol.RESPONSE_CONTENT_TYPES)


@pytest.mark.parametrize(
    ("variant", "instance_type"),
    [("cpu", "ml.g5.xlarge"), ("cpu", "ml.c6g.xlarge"), ("cpu", "ml.inf2.xlarge"), ("gpu", "ml.m5.xlarge"), ("gpu", "ml.p5.48xlarge")],
)
def test_an_instance_type_the_image_cannot_run_is_refused(variant: str, instance_type: str) -> None:
    with pytest.raises(StepError, match=f"cannot run the {variant} image"):
        instances.check_serving_instance_type(variant, instance_type)
