"""containers/ecr.py against moto's STS and ECR (AWS itself cannot exist here)."""

from __future__ import annotations

import base64

import boto3
import pytest
from moto import mock_aws

from testkit.containers import load_script

ecr_script = load_script("ecr")
REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch):
    """Fake credentials, no metadata probes, and moto for every AWS call."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


def repositories() -> dict[str, dict]:
    """name -> description of every repository in the fake account."""
    described = boto3.client("ecr", region_name=REGION).describe_repositories()["repositories"]
    return {r["repositoryName"]: r for r in described}


def test_creates_missing_repositories_scanning_on_push(capsys: pytest.CaptureFixture) -> None:
    args = ["--region", REGION, "--account", "123456789012", "--no-login",
            "--repository", "gtsrb-mxnet-gpu", "--repository", "gtsrb-mxnet-cpu"]
    assert ecr_script.main(args) == 0
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == f"123456789012.dkr.ecr.{REGION}.amazonaws.com"
    repos = repositories()
    assert set(repos) == {"gtsrb-mxnet-gpu", "gtsrb-mxnet-cpu"}
    assert all(r["imageScanningConfiguration"]["scanOnPush"] for r in repos.values())
    assert all(r["imageTagMutability"] == "MUTABLE" for r in repos.values())
    assert ecr_script.main(args) == 0  # a second push finds them and changes nothing
    assert "gtsrb-mxnet-gpu exists" in capsys.readouterr().err


def test_immutable_option_applies_to_new_repositories() -> None:
    args = ["--region", REGION, "--account", "123456789012", "--repository", "gtsrb-mxnet-gpu", "--immutable", "--no-login"]
    assert ecr_script.main(args) == 0
    assert repositories()["gtsrb-mxnet-gpu"]["imageTagMutability"] == "IMMUTABLE"


def test_docker_password_comes_from_the_authorization_token() -> None:
    client = boto3.client("ecr", region_name=REGION)
    token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = ecr_script.docker_password(client)
    assert base64.b64decode(token).decode() == f"{user}:{password}" and user == "AWS" and password


def test_without_credentials_it_fails_with_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(ecr_script.boto3, "client", lambda *a, **k: (_ for _ in ()).throw(
        ecr_script.BotoCoreError()))
    assert ecr_script.main(["--region", REGION, "--account", "123456789012", "--repository", "x", "--no-login"]) == 1
    assert "cannot prepare ECR in eu-west-1" in capsys.readouterr().err
