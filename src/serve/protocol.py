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

IMAGE_CONTENT_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "application/x-image")
RECORDIO_CONTENT_TYPE = "application/x-recordio"
REQUEST_CONTENT_TYPES: tuple[str, ...] = (*IMAGE_CONTENT_TYPES, RECORDIO_CONTENT_TYPE)
JSON_CONTENT_TYPE = "application/json"
JSONLINES_CONTENT_TYPE = "application/jsonlines"
RESPONSE_CONTENT_TYPES: tuple[str, ...] = (JSON_CONTENT_TYPE, JSONLINES_CONTENT_TYPE)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_TOP_K = 5
PREDICTIONS_KEY = "predictions"
PREDICTION_FIELDS: tuple[str, ...] = ("class_id", "class_name", "probability")


def check_prediction(document: object, num_classes: int) -> list[dict]:
    """Return the predictions of one answer, or raise ValueError saying what is wrong with it."""
    if not isinstance(document, dict) or not isinstance(document.get(PREDICTIONS_KEY), list):
        raise ValueError(f"the answer is not a JSON object with a '{PREDICTIONS_KEY}' list")
    predictions = document[PREDICTIONS_KEY]
    if not predictions:
        raise ValueError("the answer has no predictions")
    for rank, item in enumerate(predictions):
        if not isinstance(item, dict) or set(item) != set(PREDICTION_FIELDS):
            raise ValueError(f"prediction {rank} does not have exactly the fields {', '.join(PREDICTION_FIELDS)}")
        if not (isinstance(item["class_id"], int) and 0 <= item["class_id"] < num_classes):
            raise ValueError(f"prediction {rank} has class_id {item['class_id']!r}, not in 0..{num_classes - 1}")
        if not (isinstance(item["probability"], float | int) and 0.0 <= item["probability"] <= 1.0):
            raise ValueError(f"prediction {rank} has probability {item['probability']!r}, not in [0, 1]")
    probabilities = [item["probability"] for item in predictions]
    if probabilities != sorted(probabilities, reverse=True):
        raise ValueError("the predictions are not sorted by probability")
    return predictions


def parse_answer(body: bytes, num_classes: int) -> list[dict]:
    """Parse and check a single-image answer body; raise ValueError with one sentence if invalid."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the answer is not JSON ({err})") from None
    return check_prediction(document, num_classes)
