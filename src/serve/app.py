"""The Flask app of one server worker: SageMaker's hosting contract over a Predictor.

The model loads in a background thread, so the worker accepts connections at once and /ping says
503 until it is ready (SageMaker waits up to 4 minutes for a 200). Every client error is a JSON
`{"error": "<one sentence>"}` with 400, 411, 413, 415 or 504; every /invocations request logs one
line. A request has settings.timeout seconds (SAGEMAKER_MODEL_SERVER_TIMEOUT), checked between
batches of records, and at most protocol.MAX_RECORDS records.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from gtsrb.common.failure import StepError
from gtsrb.serve import protocol
from gtsrb.serve.server import ServerSettings

if TYPE_CHECKING:  # MXNet takes seconds to import: the worker imports it while /ping says 503
    from gtsrb.serve.predictor import Predictor

log = logging.getLogger("gtsrb.serve")
WORKER_BOOT_ERROR = 3  # gunicorn's exit code for a worker that cannot start: the master stops
# An invocation reaching a worker that is still loading (a sibling answered /ping, or this worker
# replaces one that died) waits for the model this long, well inside the request timeout.
LOAD_WAIT_SECONDS = 40


class ModelSlot:
    """The worker's predictor, filled by a background thread."""

    def __init__(self, source: str) -> None:
        self.predictor: Predictor | None = None
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._load, args=(source,), name="load-model", daemon=True)
        self._thread.start()

    def _load(self, source: str) -> None:
        started = time.perf_counter()
        try:
            from gtsrb.serve.predictor import Predictor

            self.predictor = Predictor.load(source)
        except Exception as err:  # noqa: BLE001 - any failure: say it in one line and stop the server
            message = str(err) if isinstance(err, StepError) else f"unexpected {type(err).__name__}: {err}"
            log.error("event=model_load_failed model=%s error=%s", source, message)
            os._exit(WORKER_BOOT_ERROR)  # a server without its model must not look healthy
        self.ready.set()
        log.info("event=model_loaded model=%s pid=%d seconds=%.2f", source, os.getpid(), time.perf_counter() - started)

    def wait(self, seconds: float) -> Predictor | None:
        """The predictor, waiting up to `seconds` for it to load."""
        self.ready.wait(seconds)
        return self.predictor


def json_response(document: dict, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(json.dumps(document), status=status, mimetype=protocol.JSON_CONTENT_TYPE)


def error(status: int, message: str) -> Response:
    """A client error with its one-sentence JSON body."""
    return json_response(protocol.error_document(message), status)


def create_app(settings: ServerSettings) -> Flask:
    """The WSGI app of one worker (called in the worker process, after the fork)."""
    app = Flask("gtsrb.serve")
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_payload_mb * 1024 * 1024)
    slot = ModelSlot(settings.model)

    @app.get(protocol.PING_PATH)
    def ping() -> Response:
        if slot.predictor is None:
            return error(503, "the model is still loading.")
        return Response("", status=200)

    @app.get(protocol.EXECUTION_PARAMETERS_PATH)
    def execution_parameters() -> Response:
        return json_response({
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": int(settings.max_payload_mb),
        })

    @app.post(protocol.INVOCATIONS_PATH)
    def invocations() -> Response:
        started = time.perf_counter()
        response, images = invoke(slot.wait(LOAD_WAIT_SECONDS), settings, time.monotonic() + settings.timeout)
        log.info(
            "event=invocation status=%d images=%d ms=%.1f content_type=%s bytes=%s",
            response.status_code, images, 1000 * (time.perf_counter() - started),
            request.mimetype or "-", request.content_length,
        )
        return response

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        if err.code == 413:
            log.info("event=invocation status=413 images=0 bytes=%s", request.content_length)
            return too_large(settings)
        return error(err.code or 500, f"{err.name}.")

    @app.errorhandler(Exception)
    def server_error(err: Exception) -> Response:  # a bug or a broken model: the trace goes to the log only
        log.exception("event=invocation status=500 error=%s", type(err).__name__)
        return error(500, f"the server failed on this request ({type(err).__name__}); see the server log.")

    return app


def too_large(settings: ServerSettings) -> Response:
    """413: the body is over the payload limit."""
    return error(413, f"the request is larger than the {settings.max_payload_mb:g} MB payload limit.")


def read_body(limit: int) -> bytes | None:
    """The request body, or None when it is longer than `limit` bytes.

    A body with Content-Length over the limit never gets here (Flask's MAX_CONTENT_LENGTH); a
    chunked one has no length, so one byte past the limit is read to tell (never cut silently).
    """
    stream = request.environ["wsgi.input"]
    body = stream.read(limit + 1) if request.content_length is None else request.get_data()
    return None if len(body) > limit else body


def invoke(predictor: Predictor | None, settings: ServerSettings, deadline: float) -> tuple[Response, int]:
    """Answer one /invocations request; (response, number of images)."""
    if predictor is None:
        return error(503, "the model is still loading; retry when /ping answers 200."), 0
    from gtsrb.serve.predictor import DeadlineError, ImageError  # loaded by now

    content_type = request.mimetype
    if content_type not in protocol.REQUEST_CONTENT_TYPES:
        return error(415, f"content type {content_type or '(none)'!r} is not supported; send one of "
                          f"{', '.join(protocol.REQUEST_CONTENT_TYPES)}."), 0
    try:
        top_k = protocol.parse_top_k(request.headers.get(protocol.CUSTOM_ATTRIBUTES_HEADER), len(predictor.class_names))
    except ValueError as err:
        return error(400, f"{err}."), 0
    body = read_body(int(settings.max_payload_mb * 1024 * 1024))
    if body is None:
        return too_large(settings), 0
    if not body:
        return error(400, "the request body is empty; send an image file."), 0
    try:
        if content_type == protocol.RECORDIO_CONTENT_TYPE:
            return recordio_answer(predictor, body, top_k, deadline)
        (document,) = predictor.predict([body], top_k=top_k, deadline=deadline)
    except ImageError as err:
        return error(400, f"{err}."), 1
    except DeadlineError as err:
        return error(504, f"the request took longer than its {settings.timeout:g} s limit ({protocol.ENV_TIMEOUT}) and "
                          f"was stopped; it {err}; send fewer records per request."), 0
    return json_response(document), 1


def recordio_answer(predictor: Predictor, body: bytes, top_k: int, deadline: float) -> tuple[Response, int]:
    """JSON Lines, one prediction per RecordIO record, in order (decoded a batch at a time)."""
    from gtsrb.common.recordio_format import RecordIOError, image_of, split_records

    try:
        records = split_records(body)
    except RecordIOError as err:
        return error(400, f"the body is not RecordIO: {err}."), 0
    if len(records) > protocol.MAX_RECORDS:
        return error(413, f"the request holds {len(records)} records, more than the {protocol.MAX_RECORDS} allowed "
                          "per request; split it (e.g. a smaller MaxPayloadInMB)."), 0
    try:
        documents = predictor.predict(lambda i: image_of(records[i]), len(records), top_k, deadline)
    except RecordIOError as err:
        return error(400, f"the body is not RecordIO: {err}."), 0
    lines = "".join(json.dumps(document) + "\n" for document in documents)
    return Response(lines, status=200, mimetype=protocol.JSONLINES_CONTENT_TYPE), len(records)
