"""Fixtures for the SageMaker pipeline tests: no network, no credentials, and a moto server.

Building the pipeline must never reach AWS, so those tests run with every socket connect and DNS
lookup refused and no credentials anywhere. Upsert/start tests talk to moto's SageMaker and IAM
over HTTP on 127.0.0.1 (AWS_ENDPOINT_URL), exactly as boto3 talks to AWS.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.deploy import GENEROUS_QUOTAS, serve_quotas
from testkit.pipelines import IMAGE_TAG, REGION, ROLE, Moto

AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION",
           "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "SAGEMAKER_VALIDATE_ROLE")


class NetworkBlocked(AssertionError):
    """Raised when code under test tries to open a connection or resolve a name."""


def _refuse(*args, **kwargs):
    raise NetworkBlocked(f"network access attempted: {args[1:] or args}")


def isolate_from_aws(mp: pytest.MonkeyPatch, home: Path) -> None:
    """No credentials, no AWS config, no region, no instance metadata: a machine without AWS."""
    for name in AWS_ENV:
        mp.setenv(name, "unset")  # recorded, so teardown restores the original state
        mp.delenv(name)
    mp.setenv("HOME", str(home))  # no ~/.aws, no ~/.config/sagemaker
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Refuse every socket connect and DNS lookup, with no credentials (function scope)."""
    isolate_from_aws(monkeypatch, tmp_path)
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)


@pytest.fixture(scope="module")
def offline_definition(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The default pipeline's definition, rendered with the network blocked (built once per module)."""
    from pipelines.sagemaker.definition import get_pipeline

    with pytest.MonkeyPatch.context() as mp:
        isolate_from_aws(mp, tmp_path_factory.mktemp("home"))
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "getaddrinfo", _refuse)
        pipeline = get_pipeline(region=REGION, role=ROLE, image_tag=IMAGE_TAG)
        return json.loads(pipeline.definition())


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_pipeline_role(iam) -> str:
    """A role SageMaker may assume, allowed everything (the SDK validates the role on upsert)."""
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    try:  # moto's state is per process: another module's server may have created it already
        arn = iam.get_role(RoleName="GtsrbPipelineRole")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName="GtsrbPipelineRole", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="GtsrbPipelineRole", PolicyName="all", PolicyDocument=json.dumps(allow))
    return arn


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's server on 127.0.0.1, with AWS_ENDPOINT_URL and fake credentials pointing at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        isolate_from_aws(mp, tmp_path_factory.mktemp("home"))
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        # The SDK's telemetry (upsert/start) is an AWS endpoint too, outside the moto server.
        from sagemaker.core.telemetry import telemetry_logging

        mp.setattr(telemetry_logging, "_send_telemetry_request", lambda *args, **kwargs: None)
        serve_quotas(mp, GENEROUS_QUOTAS)  # moto lacks ListServiceQuotas: the preflight of --start reads it
        moto = Moto(endpoint=endpoint, role="")
        yield Moto(endpoint=endpoint, role=create_pipeline_role(moto.client("iam")))
    server.stop()
