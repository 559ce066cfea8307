"""make transform against moto's SageMaker: a Batch Transform job of a registered version with the
content types the server accepts (gtsrb.serve.protocol), for a prefix of images and a RecordIO
file; the version's Model made once; every bad input with its exit code, nothing started."""

from __future__ import annotations

import subprocess

import pytest

from gtsrb.serve import protocol
from pipelines.deploy import errors, transform
from pipelines.deploy.packages import APPROVED
from testkit.deploy import register
from testkit.pipelines import REGION, REPO_ROOT, Moto


def run(moto: Moto, *extra: str, group: str = "gtsrb-transform") -> int:
    argv = ["--output", "s3://scores/out/", "--role-arn", moto.role, "--region", REGION, "--model-package-group", group,
            "--poll-seconds", "0.05", *extra]
    with pytest.raises(SystemExit) as exited:
        transform.main(argv)
    return exited.value.code


def only_job(sm) -> dict:
    (summary,) = sm.list_transform_jobs()["TransformJobSummaries"]
    return sm.describe_transform_job(TransformJobName=summary["TransformJobName"])


def test_images_and_records_are_sent_as_the_server_accepts_them(moto_server: Moto, capsys) -> None:
    sm = moto_server.client("sagemaker")
    register(sm, "gtsrb-transform", APPROVED)
    newest = register(sm, "gtsrb-transform", APPROVED)
    register(sm, "gtsrb-transform", "PendingManualApproval")  # never picked: not approved
    assert run(moto_server, "--input", "s3://photos/batch-1/", "--wait-minutes", "1") == 0
    job = only_job(sm)
    source = job["TransformInput"]
    assert source["DataSource"]["S3DataSource"] == {"S3DataType": "S3Prefix", "S3Uri": "s3://photos/batch-1/"}
    assert source["ContentType"] == protocol.ANY_IMAGE_CONTENT_TYPE in protocol.REQUEST_CONTENT_TYPES
    assert source.get("SplitType", "None") == "None" and job["BatchStrategy"] == "SingleRecord"
    assert job["TransformOutput"]["Accept"] == protocol.JSON_CONTENT_TYPE in protocol.RESPONSE_CONTENT_TYPES
    assert job["TransformOutput"]["S3OutputPath"] == "s3://scores/out/"
    assert job["MaxPayloadInMB"] == protocol.DEFAULT_MAX_PAYLOAD_MB
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    model = sm.describe_model(ModelName=job["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == newest
    out = capsys.readouterr().out
    assert f"version 2 ({newest})" in out and "status=Completed" in out

    assert run(moto_server, "--input", "s3://photos/test.rec", "--model-package-arn", newest) == 0
    jobs = [sm.describe_transform_job(TransformJobName=s["TransformJobName"]) for s in sm.list_transform_jobs()["TransformJobSummaries"]]
    (records,) = [j for j in jobs if j["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].endswith(".rec")]
    assert records["TransformInput"]["ContentType"] == protocol.RECORDIO_CONTENT_TYPE
    assert records["TransformInput"]["SplitType"] == "RecordIO" and records["BatchStrategy"] == "MultiRecord"
    assert records["TransformOutput"]["Accept"] == protocol.JSONLINES_CONTENT_TYPE
    assert records["TransformOutput"]["AssembleWith"] == "Line"
    names = [m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"]]  # moto ignores NameContains
    assert [n for n in names if n.startswith("gtsrb-transform-v")] == ["gtsrb-transform-v2-transform"]  # made once, reused


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--input", "photos/"], errors.EXIT_BAD_INPUT, "--input 'photos/': expected an S3 URI"),
        (["--input", "s3://p/x/", "--instance-type", "ml.p3.2xlarge"], errors.EXIT_BAD_INPUT, "ml.p3.2xlarge"),
        (["--input", "s3://p/x/", "--instance-count", "0"], errors.EXIT_BAD_INPUT, "at least 1"),
        (["--input", "s3://p/x/", "--model-package-group", "nobody"], errors.EXIT_NO_VERSION, "'nobody' does not exist"),
    ],
)
def test_bad_input_starts_nothing(moto_server: Moto, capsys, extra: list[str], code: int, message: str) -> None:
    sm = moto_server.client("sagemaker")
    before = len(sm.list_transform_jobs()["TransformJobSummaries"])
    assert run(moto_server, *extra, group="gtsrb-transform-bad") == code
    assert message in capsys.readouterr().err
    assert len(sm.list_transform_jobs()["TransformJobSummaries"]) == before


def test_a_pending_version_is_refused(moto_server: Moto, capsys) -> None:
    pending = register(moto_server.client("sagemaker"), "gtsrb-transform-pending", "PendingManualApproval")
    assert run(moto_server, "--input", "s3://p/x/", "--model-package-arn", pending) == errors.EXIT_NO_VERSION
    assert "not Approved" in capsys.readouterr().err


def test_make_transform_says_what_it_needs() -> None:
    done = subprocess.run(["make", "transform"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "set INPUT=s3://..., OUTPUT=s3://... and ROLE_ARN=" in done.stderr
