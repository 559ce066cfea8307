"""Our image names: one definition for `make build/push` and the pipeline definition.

One Dockerfile builds two variants: `gpu` (mxnet-cu112, used by the training step) and `cpu`
(the CPU mxnet wheel, used by the prepare and evaluate processing steps on CPU instances, and
by CI). Each variant is its own repository, tagged with the git short SHA and `latest`.
"""

from __future__ import annotations

import argparse

VARIANTS: tuple[str, ...] = ("gpu", "cpu")
REPOSITORY_PREFIX = "gtsrb-mxnet"


def repository(variant: str) -> str:
    """Repository name of a variant, e.g. gtsrb-mxnet-gpu."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return f"{REPOSITORY_PREFIX}-{variant}"


def ecr_registry(account: str, region: str) -> str:
    """The ECR registry host of an account and region."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}"


def image_uri(registry: str, variant: str, tag: str) -> str:
    """Full image URI, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/gtsrb-mxnet-gpu:abc1234."""
    return f"{registry}/{repository(variant)}:{tag}" if registry else f"{repository(variant)}:{tag}"


def main() -> None:
    """CLI for the Makefile: print a repository name or an image URI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["repository", "uri"])
    parser.add_argument("--variant", default="gpu", choices=VARIANTS)
    parser.add_argument("--registry", default="")
    parser.add_argument("--tag", default="latest")
    args = parser.parse_args()
    print(repository(args.variant) if args.what == "repository" else image_uri(args.registry, args.variant, args.tag))


if __name__ == "__main__":
    main()
