"""How deploy-model fails: one sentence and a documented exit code per kind of failure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gtsrb.common.failure import StepError

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # a stage config, flag or instance type that cannot work; nothing was touched
EXIT_NO_VERSION = 2  # unknown model package group, no Approved version, or a package not Approved
EXIT_DEPLOY_FAILED = 3  # an AWS call, the endpoint or the wait failed; what was created is removed
EXIT_SMOKE_FAILED = 4  # the endpoint answered wrongly; rolled back to the previous version (or removed)


class DeployError(StepError):
    """A failure with its exit code; the message is the one sentence the user reads."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def error_code(err: ClientError) -> str:
    """The AWS error code of a ClientError (e.g. ValidationException)."""
    return err.response.get("Error", {}).get("Code", "")


def call(step: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """Run one AWS call; an AWS error becomes a DeployError naming the step and the operation."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise DeployError(EXIT_DEPLOY_FAILED, f"{step} failed: {err}") from None


def exit_code(command: Callable[[], int]) -> int:
    """Run a command; a DeployError, or an AWS error outside a named step, becomes one sentence on
    stderr and its documented exit code."""
    try:
        return command()
    except DeployError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return err.code
    except (ClientError, BotoCoreError) as err:  # a describe/list outside a named step
        print(f"ERROR: an AWS call failed: {err}", file=sys.stderr)
        return EXIT_DEPLOY_FAILED


def as_bad_input(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a shared check that raises StepError (role ARN, region, instance type) as bad input (exit 1)."""
    try:
        return fn(*args)
    except DeployError:
        raise
    except StepError as err:
        raise DeployError(EXIT_BAD_INPUT, str(err)) from None
