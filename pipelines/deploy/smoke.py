"""The smoke test: one real sign image through sagemaker-runtime, answered in the server's format
with the image's own class first (a model that always answers one class fails it)."""

from __future__ import annotations

import re
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from gtsrb.serve import protocol
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_SMOKE_FAILED, DeployError

# A 48 px stop sign (class 14) rendered by gtsrb.demo_data, shipped with the tests.
DEFAULT_IMAGE = Path("tests/data/signs/class_14.png")
CONTENT_TYPE_OF = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
# The smoke image's file name says its class (class_14.png): the endpoint must answer it first.
CLASS_IN_NAME = re.compile(r"class_(\d+)\.")


def expected_class(image: Path) -> int:
    """The class the smoke image shows, from its name; DeployError(EXIT_BAD_INPUT) if it does not say."""
    match = CLASS_IN_NAME.match(image.name)
    if not match:
        raise DeployError(EXIT_BAD_INPUT, f"--smoke-image {image}: name it class_<id>{image.suffix} "
                                          "so the smoke test knows the right answer.")
    return int(match[1])


def content_type(image: Path) -> str:
    """The request content type of an image file, one of protocol.IMAGE_CONTENT_TYPES."""
    kind = CONTENT_TYPE_OF.get(image.suffix.lower())
    if kind not in protocol.IMAGE_CONTENT_TYPES:
        raise DeployError(EXIT_BAD_INPUT, f"--smoke-image {image}: use a .png or .jpg file.")
    return kind


def read_image(image: Path) -> bytes:
    """The smoke image's bytes, or DeployError(EXIT_BAD_INPUT) naming it (checked before deploying)."""
    content_type(image)
    try:
        body = image.read_bytes()
    except OSError as err:
        raise DeployError(EXIT_BAD_INPUT, f"--smoke-image {image}: cannot read it ({err.strerror}).") from None
    expected_class(image)
    return body


def smoke_test(runtime, endpoint: str, image: Path) -> list[dict]:
    """Send `image` to the endpoint; its checked predictions, or DeployError(EXIT_SMOKE_FAILED)."""
    try:
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType=content_type(image),
                                         Accept=protocol.JSON_CONTENT_TYPE, Body=read_image(image))
        body = answer["Body"].read()
    except (ClientError, BotoCoreError) as err:
        raise DeployError(EXIT_SMOKE_FAILED, f"smoke test: InvokeEndpoint {endpoint} failed: {err}") from None
    try:
        predictions = protocol.parse_answer(body, None)  # the deployer does not open the model: any class id
    except ValueError as err:
        raise DeployError(EXIT_SMOKE_FAILED, f"smoke test: endpoint {endpoint} answered {image.name} wrongly: {err}.") from None
    if predictions[0]["class_id"] != expected_class(image):
        raise DeployError(EXIT_SMOKE_FAILED, f"smoke test: endpoint {endpoint} answered {image.name} wrongly: class "
                                             f"{predictions[0]['class_id']} ({predictions[0]['class_name']}) first, "
                                             f"not class {expected_class(image)}.")
    return predictions
