"""What a registry already holds under a tag, so that `make push` is idempotent.

    python containers/published.py --registry HOST --repository NAME --tag TAG --local-id sha256:...
        [--region R (ECR)] [--immutable]

Compares the local image ID (`docker image inspect --format {{.Id}}`) with what the registry
serves for TAG and prints one word: `push` (tag absent, or mutable and different) or `skip` (the
same image is already there). What `.Id` is depends on Docker's image store: the classic store
reports the image config digest; the containerd image store (the default of fresh Docker Engine
installs) reports the digest of the manifest (or index) it pushes byte for byte. So a remote image
is the same when the local ID equals either its config digest or its tag's manifest digest. A
different image under an immutable tag (ECR's repository setting, or --immutable for any other
registry) exits 1 with one sentence: re-pushing the same commit is fine, moving the tag is not.
ECR is read with boto3 (BatchGetImage), other registries with the v2 HTTP API (no auth: CI's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import BotoCoreError, ClientError

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                  "application/vnd.oci.image.manifest.v1+json")
INDEX_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json",
               "application/vnd.oci.image.index.v1+json")
EXIT_TAG_TAKEN = 1


def ecr_state(registry: str, region: str, repository: str, tag: str) -> tuple[set[str], bool]:
    """(digests naming the image under tag, empty when absent; repository is tag-immutable) from ECR."""
    ecr, account = boto3.client("ecr", region_name=region), registry.split(".", 1)[0]
    described = ecr.describe_repositories(registryId=account, repositoryNames=[repository])["repositories"][0]
    immutable = described.get("imageTagMutability", "MUTABLE").startswith("IMMUTABLE")
    found = ecr.batch_get_image(registryId=account, repositoryName=repository, imageIds=[{"imageTag": tag}],
                                acceptedMediaTypes=[*MANIFEST_TYPES, *INDEX_TYPES])["images"]
    if not found:
        return set(), immutable
    manifest = found[0]["imageManifest"]
    # ECR's imageDigest is the sha256 of the manifest bytes it stores and returns; both are kept
    # (a registry fake may compute its digest otherwise).
    return image_digests(manifest, sha256(manifest.encode())) | {found[0]["imageId"]["imageDigest"]}, immutable


def registry_digests(registry: str, repository: str, tag: str) -> set[str]:
    """Digests naming the image under tag in a plain v2 registry (empty when the tag is absent)."""
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return image_digests(body.decode(), response.headers.get("Docker-Content-Digest") or sha256(body))
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return set()
        raise


def sha256(data: bytes) -> str:
    """A content digest as registries write it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_digests(manifest: str, manifest_digest: str) -> set[str]:
    """The tag's manifest (or index) digest and, for a single-image manifest, its config digest."""
    config = json.loads(manifest).get("config", {}).get("digest")
    return {manifest_digest, config} - {None}


def decide(local_id: str, remote: set[str], immutable: bool, where: str) -> str:
    """`push` or `skip`; raises SystemExit with one sentence when an immutable tag would move."""
    if not remote:
        return "push"
    if local_id in remote:  # config digest (classic store) or manifest digest (containerd store)
        return "skip"
    if immutable:
        print(f"push: {where} already holds a different image ({min(remote)[:19]}, this build is {local_id[:19]}) "
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
            remote, immutable = registry_digests(args.registry, args.repository, args.tag), False
    except (BotoCoreError, ClientError, OSError, ValueError, KeyError) as err:
        print(f"push: cannot read {where} from the registry: {err}", file=sys.stderr)
        return 1
    print(decide(args.local_id, remote, immutable or args.immutable, where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
