"""Wait for an endpoint to settle, with a limit and a progress line per poll."""

from __future__ import annotations

import time
from collections.abc import Callable

from pipelines.deploy.errors import call

# Statuses SageMaker passes through on its way to InService / Failed.
TRANSITIONAL = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


def wait_for_endpoint(
    sm,
    endpoint: str,
    limit_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll DescribeEndpoint until the status leaves TRANSITIONAL or `limit_s` passes; the last answer."""
    start = clock()
    while True:
        described = call("DescribeEndpoint", sm.describe_endpoint, EndpointName=endpoint)
        status, elapsed = described["EndpointStatus"], clock() - start
        if status not in TRANSITIONAL or elapsed >= limit_s:
            return described
        print(f"endpoint={endpoint} status={status} elapsed={elapsed:.0f}s limit={limit_s:.0f}s", flush=True)
        sleep(max(0.0, min(poll_s, limit_s - elapsed)))
