"""Helpers of the SageMaker pipeline tests (fixtures are in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
IMAGE_TAG = "abc1234"
REPO_ROOT = Path(__file__).resolve().parents[2]


def steps_by_name(definition: dict) -> dict[str, dict]:
    """Every step of a definition, including those inside conditions, by name."""
    found: dict[str, dict] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop()
        found[step["Name"]] = step
        pending += step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", [])
    return found


@dataclass(frozen=True)
class Moto:
    """A running moto server and a SageMaker-trusted role in its IAM."""

    endpoint: str
    role: str

    def client(self, service: str):
        """A boto3 client of the server."""
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)
