"""Our image names: one definition for `make build/push` and the pipeline definition.

One Dockerfile builds two variants: `gpu` (mxnet-cu112, used by the training step) and `cpu`
(the CPU mxnet wheel, used by the prepare and evaluate processing steps on CPU instances, and
by CI). Each variant is its own repository, tagged with the git short SHA (immutable references:
the pipeline definition names that tag, never `latest`).

The images' account has one source, image_account(): `make push` pushes there and the pipeline
definition names it, so cross-account setups (CI in a tools account, the role elsewhere) agree.
"""

from __future__ import annotations

import argparse
import re
import sys

from pipelines import aws

VARIANTS: tuple[str, ...] = ("gpu", "cpu")
REPOSITORY_PREFIX = "gtsrb-mxnet"


def repository(variant: str) -> str:
    """Repository name of a variant, e.g. gtsrb-mxnet-gpu."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return f"{REPOSITORY_PREFIX}-{variant}"


_ACCOUNT = re.compile(r"^\d{12}$")


def image_account(role: str | None, account: str | None = None) -> str:
    """The account whose ECR holds our images: `account` if given, else the role ARN's account."""
    if account:
        if not _ACCOUNT.match(account):
            raise ValueError(f"image account {account!r} is not a 12-digit AWS account id")
        return account
    role_account = aws.role_account(role)
    if role_account is None:
        raise ValueError("no image account: set IMAGE_ACCOUNT=<12 digits> or ROLE_ARN=arn:aws:iam::<account>:role/<name>")
    return role_account


def ecr_registry(account: str, region: str) -> str:
    """The ECR registry host of an account and region."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def image_uri(registry: str, variant: str, tag: str) -> str:
    """Full image URI, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/gtsrb-mxnet-gpu:abc1234
    (a digest `sha256:...` as tag gives `...gtsrb-mxnet-gpu@sha256:...`)."""
    name = f"{registry}/{repository(variant)}" if registry else repository(variant)
    return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"


def main() -> None:
    """CLI for the Makefile: print a repository name or an image URI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["repository", "uri", "account"])
    parser.add_argument("--variant", default="gpu", choices=VARIANTS)
    parser.add_argument("--registry", default="")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--role", default="", help="account: the SageMaker execution role ARN")
    parser.add_argument("--account", default="", help="account: an explicit image account (IMAGE_ACCOUNT)")
    args = parser.parse_args()
    if args.what == "account":
        try:
            print(image_account(args.role, args.account))
        except ValueError as err:
            sys.exit(f"images: {err}")
    else:
        print(repository(args.variant) if args.what == "repository" else image_uri(args.registry, args.variant, args.tag))


if __name__ == "__main__":
    main()
