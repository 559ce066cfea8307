"""`deploy-model`: deploy the newest Approved model package version to a stage's endpoint.

    deploy-model --stage staging [--model-package-arn ARN] [--role-arn ARN] [--region R]
    deploy-model --stage prod --undeploy

The stage's settings are in deploy/<stage>.json (pipelines.deploy.stage_config). Exit codes:
0 deployed, already serving, or undeployed; 1 bad input (stage config, flag, role, smoke image,
an instance type the serving image cannot run on); 2 unknown model package group, no Approved
version, or a package that is not Approved; 3 an AWS call, the endpoint or the wait failed (what
was created is removed; a failed update leaves the previous version serving); 4 the smoke test
failed (rolled back the same way).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from pipelines import aws
from pipelines.deploy import deployer, smoke, stage_config
from pipelines.deploy.deployer import Clients, Request
from pipelines.deploy.errors import EXIT_BAD_INPUT, DeployError, as_bad_input, exit_code


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; every one but --stage has a default or comes from the stage config."""
    parser = argparse.ArgumentParser(prog="deploy-model", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="stage name: its settings are deploy/<stage>.json")
    parser.add_argument("--config", type=Path, default=None, help="stage config file (default deploy/<stage>.json)")
    parser.add_argument("--model-package-arn", default=None, help="deploy this version (default: newest Approved)")
    parser.add_argument("--role-arn", default=None, help="execution role of the model (default: the config's)")
    parser.add_argument("--region", default=None, help="AWS region (default AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--git-sha", default=None, help="tag value (default GITHUB_SHA, else git rev-parse)")
    parser.add_argument("--smoke-image", type=Path, default=smoke.DEFAULT_IMAGE, help="image sent as the smoke test")
    parser.add_argument("--poll-seconds", type=float, default=30.0, help="seconds between endpoint status checks")
    parser.add_argument("--github-output", type=Path, default=None,
                        help="append model_package_arn=<deployed ARN> to this file (GitHub Actions: $GITHUB_OUTPUT)")
    parser.add_argument("--undeploy", action="store_true", help="remove the stage's endpoint, its configs and models")
    return parser.parse_args(argv)


def git_sha(given: str | None) -> str:
    """--git-sha, else GITHUB_SHA (CI), else this checkout's short SHA, else 'unknown'."""
    if given or os.environ.get("GITHUB_SHA"):
        return (given or os.environ["GITHUB_SHA"])[:12]
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return done.stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_clients(region: str) -> Clients:
    """boto3 clients of SageMaker, its runtime, CloudWatch and Service Quotas (AWS_ENDPOINT_URL redirects them)."""
    import boto3

    names = ("sagemaker", "sagemaker-runtime", "cloudwatch", "service-quotas")
    return Clients(*(boto3.client(name, region_name=region) for name in names))


def request_of(args: argparse.Namespace, config: stage_config.StageConfig, region: str) -> Request:
    """The checked deployment request of the flags and the stage config."""
    role = args.role_arn or config.execution_role_arn
    if not role:
        raise DeployError(EXIT_BAD_INPUT, "no execution role: pass --role-arn or set execution_role_arn in the stage config.")
    as_bad_input(aws.account_of, role)
    return Request(stage=args.stage, config=config, role=role, region=region, git_sha=git_sha(args.git_sha),
                   smoke_image=args.smoke_image, package_arn=args.model_package_arn, poll_s=args.poll_seconds)


def run(argv: list[str] | None = None) -> int:
    """Deploy or undeploy; raises DeployError on failure."""
    args = parse_args(argv)
    config = stage_config.load(args.config or stage_config.config_path(args.stage))
    region = as_bad_input(aws.region, args.region, "--region (make: REGION=)")
    if args.undeploy:
        deleted = deployer.undeploy(make_clients(region), args.stage, config)
        print(f"undeployed stage={args.stage}: " + (", ".join(deleted) if deleted else "nothing was deployed"))
        return 0
    target = deployer.deploy(make_clients(region), request_of(args, config, region))
    if args.github_output:  # so CI promotes to prod exactly what staging tested
        with args.github_output.open("a") as out:
            out.write(f"model_package_arn={target.package.arn}\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console script: one sentence on stderr and the documented exit code on failure."""
    try:
        code = exit_code(lambda: run(argv))
    except KeyboardInterrupt:
        print("ERROR: interrupted; run the same command again (it is idempotent) or make undeploy.", file=sys.stderr)
        code = 130
    sys.exit(code)
