"""Get ECR ready for `make push`: create missing repositories, log Docker in.

    python containers/ecr.py --region eu-west-1 --account 123456789012 --repository gtsrb-mxnet-gpu [--immutable]

The account is pipelines.images.image_account (the one the pipeline definition names), not the
caller's: in a cross-account setup the caller needs push rights there.

Prints the registry host (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com) as its last line.
New repositories scan on push; --immutable makes their tags immutable (then only the git-SHA tag
can be pushed: `latest` would have to move). Existing repositories are left as they are.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.images import ecr_registry


def ensure_repository(ecr, name: str, immutable: bool, account: str) -> bool:
    """Create the repository in `account` if it does not exist; True when it was created."""
    try:
        ecr.describe_repositories(registryId=account, repositoryNames=[name])
        return False
    except ecr.exceptions.RepositoryNotFoundException:
        ecr.create_repository(
            registryId=account,
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="IMMUTABLE" if immutable else "MUTABLE",
        )
        return True


def docker_password(ecr) -> tuple[str, str]:
    """(user, password) from an ECR authorization token (valid 12 hours)."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return user, password


def docker_login(docker: str, registry: str, user: str, password: str) -> None:
    """`docker login` with the password on stdin (never on the command line or in a file we write)."""
    subprocess.run([docker, "login", "--username", user, "--password-stdin", registry],
                   input=password.encode(), check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    """Repositories, login; print the registry host."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--account", required=True, help="the images' account (pipelines.images.image_account)")
    parser.add_argument("--repository", action="append", required=True, help="repository name (repeat)")
    parser.add_argument("--immutable", action="store_true", help="tag immutability for new repositories")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--no-login", action="store_true", help="skip docker login (tests)")
    args = parser.parse_args(argv)
    try:
        ecr = boto3.client("ecr", region_name=args.region)
        for name in args.repository:
            created = ensure_repository(ecr, name, args.immutable, args.account)
            print(f">> ecr: repository {name} {'created' if created else 'exists'}", file=sys.stderr)
        registry = ecr_registry(args.account, args.region)
        if not args.no_login:
            docker_login(args.docker, registry, *docker_password(ecr))
            print(f">> ecr: docker logged in to {registry}", file=sys.stderr)
    except (BotoCoreError, ClientError) as err:
        print(f"ecr: cannot prepare ECR in {args.region}: {err} (are AWS credentials set?)", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as err:
        print(f"ecr: docker login failed (exit {err.returncode}); is the Docker engine running?", file=sys.stderr)
        return 1
    print(registry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
