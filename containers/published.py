"""What a registry already holds under a tag, so that `make push` is idempotent.

    python containers/published.py --registry HOST --repository NAME --tag TAG --local-id sha256:...
        [--region R (ECR)] [--immutable]

Compares the image config digest (`docker image inspect --format {{.Id}}`, the same for the same
image wherever it came from) with the one the registry serves for TAG and prints one word:
`push` (tag absent, or mutable and different) or `skip` (the same image is already there). A
different image under an immutable tag (ECR's repository setting, or --immutable for any other
registry) exits 1 with one sentence: re-pushing the same commit is fine, moving the tag is not.
ECR is read with boto3 (BatchGetImage), other registries with the v2 HTTP API (no auth: CI's).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")
EXIT_TAG_TAKEN = 1


def ecr_state(registry: str, region: str, repository: str, tag: str) -> tuple[str | None, bool]:
    """(config digest under tag or None, repository is tag-immutable) from ECR; registry = account.dkr.ecr..."""
    ecr, account = boto3.client("ecr", region_name=region), registry.split(".", 1)[0]
    described = ecr.describe_repositories(registryId=account, repositoryNames=[repository])["repositories"][0]
    immutable = described.get("imageTagMutability", "MUTABLE").startswith("IMMUTABLE")
    found = ecr.batch_get_image(registryId=account, repositoryName=repository, imageIds=[{"imageTag": tag}],
                                acceptedMediaTypes=list(MANIFEST_TYPES))["images"]
    return (config_digest(found[0]["imageManifest"]) if found else None), immutable


def registry_digest(registry: str, repository: str, tag: str) -> str | None:
    """Config digest under tag from a plain v2 registry (None when the tag is absent)."""
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": ", ".join(MANIFEST_TYPES)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return config_digest(response.read().decode())
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def config_digest(manifest: str) -> str:
    """The config digest of an image manifest (JSON text)."""
    return json.loads(manifest)["config"]["digest"]


def decide(local_id: str, remote: str | None, immutable: bool, where: str) -> str:
    """`push` or `skip`; raises SystemExit with one sentence when an immutable tag would move."""
    if remote is None:
        return "push"
    if remote == local_id:
        return "skip"
    if immutable:
        print(f"push: {where} already holds a different image ({remote[:19]}, this build is {local_id[:19]}) "
              "and the tag is immutable: rebuild that commit unchanged, or push under a new TAG.", file=sys.stderr)
        raise SystemExit(EXIT_TAG_TAKEN)
    return "push"


def main(argv: list[str] | None = None) -> int:
    """Print push or skip for one image and tag."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--local-id", required=True, help="docker image inspect --format {{.Id}} of the local image")
    parser.add_argument("--region", help="the registry is ECR in this region")
    parser.add_argument("--immutable", action="store_true", help="treat the tag as immutable (non-ECR registries)")
    args = parser.parse_args(argv)
    where = f"{args.registry}/{args.repository}:{args.tag}"
    try:
        if args.region:
            remote, immutable = ecr_state(args.registry, args.region, args.repository, args.tag)
        else:
            remote, immutable = registry_digest(args.registry, args.repository, args.tag), False
    except (BotoCoreError, ClientError, OSError, ValueError, KeyError) as err:
        print(f"push: cannot read {where} from the registry: {err}", file=sys.stderr)
        return 1
    print(decide(args.local_id, remote, immutable or args.immutable, where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
