"""The S3 of a local-mode execution: a moto server on 127.0.0.1, reachable only from this process.

While it runs, every AWS endpoint of this process points at it (AWS_ENDPOINT_URL) with throw-away
credentials, so nothing the SDK does can reach a real account, whatever the user's own AWS
configuration says. The containers never talk to S3: the SDK downloads their inputs and uploads
their outputs on the host, as SageMaker does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

REGION = "us-east-1"
# Dropped while the server runs: they would point the SDK at a real account.
_USER_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3",
                       "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@contextlib.contextmanager
def environment(values: dict[str, str], drop: tuple[str, ...] = ()) -> Iterator[None]:
    """Set `values` and remove `drop` from os.environ for the block, then restore it exactly."""
    saved = {key: os.environ.get(key) for key in (*values, *drop)}
    for key in drop:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def moto_s3(bucket: str) -> Iterator[str]:
    """A moto server with `bucket` created; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    offline = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with environment(offline, drop=_USER_AWS_VARIABLES):
            client().create_bucket(Bucket=bucket)
            yield endpoint
    finally:
        server.stop()


def client():
    """A boto3 S3 client of the running server (AWS_ENDPOINT_URL)."""
    import boto3

    return boto3.client("s3", region_name=REGION)


def mirror(bucket: str, prefix: str, destination: Path) -> list[Path]:
    """Download every object below s3://bucket/prefix/ into destination (keys as relative paths)."""
    s3, files = client(), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for item in page.get("Contents", []):
            target = destination / item["Key"][len(prefix.rstrip("/")) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, item["Key"], str(target))
            files.append(target)
    return files
