"""The smoke test: one real sign image through sagemaker-runtime, answered in the server's format."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from gtsrb.serve import protocol
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_SMOKE_FAILED, DeployError

# A 48 px stop sign (class 14) rendered by gtsrb.demo_data, shipped with the tests.
DEFAULT_IMAGE = Path("tests/data/signs/class_14.png")
CONTENT_TYPE_OF = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


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
        return image.read_bytes()
    except OSError as err:
        raise DeployError(EXIT_BAD_INPUT, f"--smoke-image {image}: cannot read it ({err.strerror}).") from None


def smoke_test(runtime, endpoint: str, image: Path) -> list[dict]:
    """Send `image` to the endpoint; its checked predictions, or DeployError(EXIT_SMOKE_FAILED)."""
    try:
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType=content_type(image),
                                         Accept=protocol.JSON_CONTENT_TYPE, Body=read_image(image))
        body = answer["Body"].read()
    except (ClientError, BotoCoreError) as err:
        raise DeployError(EXIT_SMOKE_FAILED, f"smoke test: InvokeEndpoint {endpoint} failed: {err}") from None
    try:
        return protocol.parse_answer(body, None)  # the deployer does not open the model: any class id
    except ValueError as err:
        raise DeployError(EXIT_SMOKE_FAILED, f"smoke test: endpoint {endpoint} answered {image.name} wrongly: {err}.") from None
