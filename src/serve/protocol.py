"""The wire format of the model server: content types and the prediction JSON, defined once.

The server writes it; the deploy step's smoke test, the local twin and the tests read it.
A single-image request returns one prediction object; an `application/x-recordio` request
(batch transform, SplitType=RecordIO) returns JSON Lines, one prediction object per record:

    {"predictions": [{"class_id": 14, "class_name": "Stop", "probability": 0.98}, ...]}

sorted by probability, `top_k` long (default DEFAULT_TOP_K, request header
`X-Amzn-SageMaker-Custom-Attributes: top_k=N`).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

ANY_IMAGE_CONTENT_TYPE = "application/x-image"  # any format the server decodes (batch transform of a mixed prefix)
IMAGE_CONTENT_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", ANY_IMAGE_CONTENT_TYPE)
RECORDIO_CONTENT_TYPE = "application/x-recordio"
REQUEST_CONTENT_TYPES: tuple[str, ...] = (*IMAGE_CONTENT_TYPES, RECORDIO_CONTENT_TYPE)
JSON_CONTENT_TYPE = "application/json"
JSONLINES_CONTENT_TYPE = "application/jsonlines"
RESPONSE_CONTENT_TYPES: tuple[str, ...] = (JSON_CONTENT_TYPE, JSONLINES_CONTENT_TYPE)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_TOP_K = 5
PREDICTIONS_KEY = "predictions"
PREDICTION_FIELDS: tuple[str, ...] = ("class_id", "class_name", "probability")
ERROR_KEY = "error"  # every 4xx/5xx answer: {"error": "<one sentence>"}
TOP_K_ATTRIBUTE = "top_k"  # the key inside the custom attributes header

# The SageMaker hosting contract (paths, port, limits and the environment it sets).
PING_PATH = "/ping"
INVOCATIONS_PATH = "/invocations"
EXECUTION_PARAMETERS_PATH = "/execution-parameters"
DEFAULT_PORT = 8080
DEFAULT_MAX_PAYLOAD_MB = 6  # SageMaker real-time endpoints refuse larger requests themselves
MAX_RECORDS = 10_000  # RecordIO records per request (a batch transform's mini-batch); more is a 413
MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks model.tar.gz
ENV_PORT = "SAGEMAKER_BIND_TO_PORT"
ENV_BATCH = "SAGEMAKER_BATCH"
ENV_MAX_PAYLOAD = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
ENV_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
ENV_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"


def parse_top_k(header: str | None, num_classes: int) -> int:
    """top_k from the custom attributes header (`top_k=3`, maybe among other `k=v` pairs split by
    `,` or `;`); DEFAULT_TOP_K when absent; ValueError with one sentence when invalid."""
    for pair in (header or "").replace(";", ",").split(","):
        key, _, value = pair.partition("=")
        if key.strip() != TOP_K_ATTRIBUTE:
            continue
        if not value.strip().isdigit() or not 1 <= int(value) <= num_classes:
            raise ValueError(f"{CUSTOM_ATTRIBUTES_HEADER} top_k must be an integer from 1 to {num_classes}, got {value.strip()!r}")
        return int(value)
    return min(DEFAULT_TOP_K, num_classes)


def prediction_document(probabilities, class_names: list[str], top_k: int) -> dict:
    """The answer for one image: its top_k classes by probability, highest first."""
    order = sorted(range(len(probabilities)), key=lambda i: -float(probabilities[i]))[:top_k]
    return {PREDICTIONS_KEY: [
        {"class_id": i, "class_name": class_names[i], "probability": round(float(probabilities[i]), 6)} for i in order
    ]}


def error_document(message: str) -> dict:
    """The body of every error answer."""
    return {ERROR_KEY: message}


def check_prediction(document: object, num_classes: int | None) -> list[dict]:
    """Return the predictions of one answer, or raise ValueError saying what is wrong with it
    (`num_classes` None: a client that does not know the model's classes checks ids are >= 0)."""
    upper = num_classes if num_classes is not None else float("inf")
    if not isinstance(document, dict) or not isinstance(document.get(PREDICTIONS_KEY), list):
        raise ValueError(f"the answer is not a JSON object with a '{PREDICTIONS_KEY}' list")
    predictions = document[PREDICTIONS_KEY]
    if not predictions:
        raise ValueError("the answer has no predictions")
    for rank, item in enumerate(predictions):
        if not isinstance(item, dict) or set(item) != set(PREDICTION_FIELDS):
            raise ValueError(f"prediction {rank} does not have exactly the fields {', '.join(PREDICTION_FIELDS)}")
        if not (isinstance(item["class_id"], int) and 0 <= item["class_id"] < upper):
            raise ValueError(f"prediction {rank} has class_id {item['class_id']!r}, not a class id of the model")
        if not (isinstance(item["probability"], float | int) and 0.0 <= item["probability"] <= 1.0):
            raise ValueError(f"prediction {rank} has probability {item['probability']!r}, not in [0, 1]")
    probabilities = [item["probability"] for item in predictions]
    if probabilities != sorted(probabilities, reverse=True):
        raise ValueError("the predictions are not sorted by probability")
    return predictions


def parse_answer(body: bytes, num_classes: int | None) -> list[dict]:
    """Parse and check a single-image answer body; raise ValueError with one sentence if invalid."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the answer is not JSON ({err})") from None
    return check_prediction(document, num_classes)


def wait_until_ready(url: str, seconds: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll GET {url}/ping until it answers 200 (True); False at the deadline or once `alive()` is False.

    For clients that start a server (tests, the benchmark): SageMaker polls /ping the same way.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"{url}{PING_PATH}", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:  # refused, reset, timed out, or an HTTP error status (503 while loading)
            pass
        time.sleep(0.2)
    return False
