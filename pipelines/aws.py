"""AWS names every host tool reads the same way: an IAM role ARN (and its account), the region.

Nothing here calls AWS. The Makefile's `AWS_REGION` (REGION=, else the environment) is passed
down as an explicit region; a tool run by hand falls back to the environment in region().
"""

from __future__ import annotations

import os
import re

from gtsrb.common.failure import StepError

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/.+$")  # aws, aws-cn, aws-us-gov partitions


def role_account(role: str | None) -> str | None:
    """The 12-digit account of an IAM role ARN, or None when `role` is not one."""
    match = ROLE_ARN.match(role or "")
    return match.group(1) if match else None


def account_of(role: str) -> str:
    """The 12-digit account of an IAM role ARN, or a clear error."""
    account = role_account(role)
    if account is None:
        raise StepError(f"role {role!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>).")
    return account


def region(explicit: str | None, how_to_pass: str) -> str:
    """`explicit`, else AWS_REGION / AWS_DEFAULT_REGION, else a clear error saying `how_to_pass` it."""
    found = explicit or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise StepError(f"no AWS region: pass {how_to_pass} or set AWS_DEFAULT_REGION.")
    return found
