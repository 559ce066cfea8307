"""Which model package version to deploy: the newest Approved one of a group, or a named ARN."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from pipelines import graph, images
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_NO_VERSION, DeployError, call, error_code

APPROVED = graph.APPROVED


@dataclass(frozen=True)
class Package:
    """One model package version, as much of it as deploying needs."""

    arn: str
    group: str
    version: int
    image: str  # the serving image of its inference specification
    instance_types: tuple[str, ...]  # SupportedRealtimeInferenceInstanceTypes (empty: not listed)

    @property
    def variant(self) -> str:
        """Our image variant (cpu | gpu) the package serves with, from its repository name."""
        repo = self.image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
        for variant in images.VARIANTS:
            if repo == images.repository(variant):
                return variant
        raise DeployError(
            EXIT_BAD_INPUT,
            f"model package {self.arn} serves with {self.image}, which is not one of our images "
            f"({', '.join(images.repository(v) for v in images.VARIANTS)}).",
        )


def newest_approved(sm, group: str) -> Package:
    """The newest Approved version of `group`; DeployError(EXIT_NO_VERSION) when none or no group."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as err:
        if error_code(err) == "ValidationException":
            raise DeployError(EXIT_NO_VERSION, f"model package group {group!r} does not exist in this account and region.") from None
        raise DeployError(EXIT_NO_VERSION, f"DescribeModelPackageGroup {group} failed: {err}") from None
    found = call(
        "ListModelPackages", sm.list_model_packages, ModelPackageGroupName=group, ModelApprovalStatus=APPROVED,
        SortBy="CreationTime", SortOrder="Descending", MaxResults=1,
    )["ModelPackageSummaryList"]
    if not found:
        raise DeployError(EXIT_NO_VERSION, f"model package group {group!r} has no Approved version: approve one first.")
    return by_arn(sm, found[0]["ModelPackageArn"])


def by_arn(sm, arn: str) -> Package:
    """A named model package version; it must exist and be Approved."""
    try:
        described = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as err:
        raise DeployError(EXIT_NO_VERSION, f"model package {arn} cannot be read: {err}") from None
    status = described.get("ModelApprovalStatus")
    if status != APPROVED:
        raise DeployError(EXIT_NO_VERSION, f"model package {arn} is {status}, not {APPROVED}: approve it first.")
    spec = described.get("InferenceSpecification") or {}
    containers = spec.get("Containers") or [{}]
    return Package(
        arn=described["ModelPackageArn"],
        group=described.get("ModelPackageGroupName", ""),
        version=int(described.get("ModelPackageVersion", 0)),
        image=containers[0].get("Image", ""),
        instance_types=tuple(spec.get("SupportedRealtimeInferenceInstanceTypes") or ()),
    )
