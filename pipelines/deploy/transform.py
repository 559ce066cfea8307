"""`make transform`: score an S3 prefix of images, or a RecordIO file, with a registered model
package version in a SageMaker Batch Transform job.

    python -m pipelines.deploy.transform --input s3://bucket/photos/ --output s3://bucket/scored/ \
        --role-arn ARN [--model-package-arn ARN | --model-package-group NAME] [--region R] \
        [--instance-type ml.m5.xlarge] [--instance-count 1] [--wait-minutes 0]

The content types are the server's (gtsrb.serve.protocol): a prefix of images is sent one file
per request as `application/x-image` and each answer lands in `<output>/<file>.out` as JSON; a
`.rec` file (prepare's RecordIO, or im2rec's) is split into records (`SplitType=RecordIO`,
several records per request) and answered as JSON Lines, one prediction per record, in
`<output>/<name>.rec.out`. The Model is the package version itself (its image, model.tar.gz and
network isolation), created once per version and reused. Exit codes: 0 started (or completed,
when waited for); 1 bad input; 2 no such or no Approved version; 3 an AWS call or the job failed,
or the job still runs when the wait ends.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from gtsrb.serve import protocol
from pipelines import aws, graph, instances
from pipelines.deploy import packages
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_DEPLOY_FAILED, DeployError, as_bad_input, call, error_code, exit_code

RECORDIO_SUFFIX = ".rec"
MAX_NAME = 63  # SageMaker's limit on model and transform job names
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class InputKind:
    """How the job reads its input and what it writes (all from the server's protocol)."""

    content_type: str
    split_type: str
    batch_strategy: str
    accept: str
    assemble_with: str


IMAGES = InputKind(protocol.ANY_IMAGE_CONTENT_TYPE, "None", "SingleRecord", protocol.JSON_CONTENT_TYPE, "None")
RECORDS = InputKind(protocol.RECORDIO_CONTENT_TYPE, "RecordIO", "MultiRecord", protocol.JSONLINES_CONTENT_TYPE, "Line")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; the model version defaults to the newest Approved of the pipeline's group."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.transform", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="s3://bucket/prefix/ of images, or s3://.../file.rec")
    parser.add_argument("--output", required=True, help="s3://bucket/prefix/ for the answers")
    parser.add_argument("--role-arn", required=True, help="execution role of the Model (reads the input, writes the output)")
    parser.add_argument("--model-package-arn", default=None, help="this version (default: newest Approved of the group)")
    parser.add_argument("--model-package-group", default=graph.MODEL_PACKAGE_GROUP, help="group of the newest Approved version")
    parser.add_argument("--region", default=None, help="AWS region (default AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--instance-type", default=instances.TRANSFORM_INSTANCES[0], help="a type the cpu image serves on")
    parser.add_argument("--instance-count", type=int, default=1)
    parser.add_argument("--wait-minutes", type=float, default=0.0, help="wait this long for the job (0 = do not wait)")
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    return parser.parse_args(argv)


def s3_uri(flag: str, value: str) -> str:
    """`value` if it is an s3://bucket/key URI, else DeployError(EXIT_BAD_INPUT) naming the flag."""
    bucket = value.removeprefix("s3://").split("/", 1)[0]
    if not value.startswith("s3://") or not bucket:
        raise DeployError(EXIT_BAD_INPUT, f"{flag} {value!r}: expected an S3 URI, s3://bucket/prefix.")
    return value


def input_kind(uri: str) -> InputKind:
    """RecordIO for a .rec file, else a prefix of image files."""
    return RECORDS if uri.lower().endswith(RECORDIO_SUFFIX) else IMAGES


def model_name(package: packages.Package) -> str:
    """One Model per package version (`<group>-v<N>-transform`), reused by every job of it."""
    return f"{package.group or 'model'}"[: MAX_NAME - 20] + f"-v{package.version}-transform"


def ensure_model(sm, package: packages.Package, role: str) -> str:
    """The version's Model for transform jobs, created unless it exists."""
    name = model_name(package)
    try:
        sm.describe_model(ModelName=name)
        return name
    except ClientError as err:
        if error_code(err) != "ValidationException":  # "Could not find model"
            raise
    call("CreateModel", sm.create_model, ModelName=name, ExecutionRoleArn=role,
         PrimaryContainer={"ModelPackageName": package.arn}, EnableNetworkIsolation=True,
         Tags=[{"Key": "project", "Value": "gtsrb"}, {"Key": "model-package-arn", "Value": package.arn}])
    return name


def job_request(name: str, model: str, source: str, output: str, kind: InputKind, instance_type: str, count: int) -> dict:
    """CreateTransformJob's arguments."""
    return {
        "TransformJobName": name,
        "ModelName": model,
        "MaxPayloadInMB": protocol.DEFAULT_MAX_PAYLOAD_MB,
        "BatchStrategy": kind.batch_strategy,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": kind.content_type,
            "SplitType": kind.split_type,
        },
        "TransformOutput": {"S3OutputPath": output, "Accept": kind.accept, "AssembleWith": kind.assemble_with},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": count},
        "Tags": [{"Key": "project", "Value": "gtsrb"}],
    }


def wait(sm, name: str, minutes: float, poll_s: float) -> str:
    """The job's status after it ended or the wait ran out."""
    deadline = time.monotonic() + minutes * 60
    while True:
        status = call("DescribeTransformJob", sm.describe_transform_job, TransformJobName=name)["TransformJobStatus"]
        if status in TERMINAL or time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)


def run(argv: list[str] | None = None) -> int:
    """Check the input, find the version, create its Model, start the job (and wait)."""
    args = parse_args(argv)
    source, output = s3_uri("--input", args.input), s3_uri("--output", args.output)
    as_bad_input(aws.account_of, args.role_arn)
    as_bad_input(instances.check_serving_instance_type, instances.SERVING_VARIANT, args.instance_type)
    if args.instance_count < 1:
        raise DeployError(EXIT_BAD_INPUT, f"--instance-count {args.instance_count}: must be at least 1.")
    region = as_bad_input(aws.region, args.region, "--region (make: REGION=)")
    sm = make_client(region)
    package = (packages.by_arn(sm, args.model_package_arn) if args.model_package_arn
               else packages.newest_approved(sm, args.model_package_group))
    kind = input_kind(source)
    name = f"{model_name(package)[: MAX_NAME - 15]}-{time.strftime('%Y%m%d%H%M%S')}"
    print(f">> transform job {name}: version {package.version} ({package.arn}) on {source} as {kind.content_type} -> {output}")
    request = job_request(name, ensure_model(sm, package, args.role_arn), source, output, kind, args.instance_type, args.instance_count)
    call("CreateTransformJob", sm.create_transform_job, **request)
    print(f"started transform job={name}; answers ({kind.accept}) go to {output}")
    if args.wait_minutes <= 0:
        return 0
    status = wait(sm, name, args.wait_minutes, args.poll_seconds)
    print(f"transform job={name} status={status}")
    if status != "Completed":
        reason = sm.describe_transform_job(TransformJobName=name).get("FailureReason", "")
        raise DeployError(EXIT_DEPLOY_FAILED, f"transform job {name} is {status}{': ' + reason if reason else ''}.")
    return 0


def make_client(region: str):
    """boto3's SageMaker client (AWS_ENDPOINT_URL redirects it, e.g. to moto)."""
    import boto3

    return boto3.client("sagemaker", region_name=region)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one sentence on stderr and the documented exit code on failure."""
    sys.exit(exit_code(lambda: run(argv)))


if __name__ == "__main__":
    main()
