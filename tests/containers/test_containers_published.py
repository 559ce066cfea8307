"""containers/published.py (make push's skip-or-push decision) against moto's ECR, in both Docker image
stores: the classic store's `.Id` is the config digest, the containerd store's the manifest digest."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from moto import mock_aws

from testkit.containers import load_script

published = load_script("published")
REGION, ACCOUNT, REPOSITORY = "eu-west-1", "123456789012", "gtsrb-mxnet-gpu"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
CONFIG = "sha256:" + "c" * 64
MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": CONFIG},
    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654,
                "digest": "sha256:" + "1" * 64}],
})


def digest(text: str) -> str:
    """The registry digest of a manifest's bytes."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


INDEX = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                                   "digest": digest(MANIFEST), "size": len(MANIFEST),
                                   "platform": {"architecture": "amd64", "os": "linux"}}]})


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch):
    """moto's ECR with an empty repository (fake credentials, no metadata probes)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("ecr", region_name=REGION)
        client.create_repository(repositoryName=REPOSITORY)
        yield client


def put(client, manifest: str, tag: str = "abc1234") -> None:
    """Push a manifest under a tag (what docker push leaves in ECR)."""
    media_type = json.loads(manifest)["mediaType"]
    client.put_image(repositoryName=REPOSITORY, imageManifest=manifest, imageManifestMediaType=media_type, imageTag=tag)


def decision(local_id: str) -> int:
    """Exit code of published.py for the local image ID (it prints push or skip)."""
    return published.main(["--registry", REGISTRY, "--repository", REPOSITORY, "--tag", "abc1234",
                           "--local-id", local_id, "--region", REGION])


def test_ecr_state_reads_both_digests_of_a_tag(ecr) -> None:
    put(ecr, MANIFEST)
    digests, immutable = published.ecr_state(REGISTRY, REGION, REPOSITORY, "abc1234")
    assert {CONFIG, digest(MANIFEST)} <= digests and immutable is False
    assert published.ecr_state(REGISTRY, REGION, REPOSITORY, "other") == (set(), False)


@pytest.mark.parametrize("store_id", [CONFIG, digest(MANIFEST)], ids=["classic-store", "containerd-store"])
def test_the_same_image_is_skipped_in_either_image_store(ecr, capsys: pytest.CaptureFixture, store_id: str) -> None:
    put(ecr, MANIFEST)
    assert decision(store_id) == 0
    assert capsys.readouterr().out.strip() == "skip"


def test_an_index_pushed_from_the_containerd_store_is_recognised(ecr, capsys: pytest.CaptureFixture) -> None:
    put(ecr, INDEX)
    digests, _ = published.ecr_state(REGISTRY, REGION, REPOSITORY, "abc1234")
    assert digest(INDEX) in digests and not any(d == CONFIG for d in digests)
    assert decision(digest(INDEX)) == 0 and capsys.readouterr().out.strip() == "skip"


def test_absent_tag_pushes_and_a_moved_immutable_tag_is_refused(ecr, capsys: pytest.CaptureFixture) -> None:
    assert decision(CONFIG) == 0 and capsys.readouterr().out.strip() == "push"
    put(ecr, MANIFEST)
    ecr.put_image_tag_mutability(repositoryName=REPOSITORY, imageTagMutability="IMMUTABLE")
    with pytest.raises(SystemExit) as stopped:
        decision("sha256:" + "d" * 64)
    err = capsys.readouterr().err
    assert stopped.value.code == published.EXIT_TAG_TAKEN and "the tag is immutable" in err and REPOSITORY in err
