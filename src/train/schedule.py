"""Learning rate as a pure function of the global step: linear warmup, then cosine to zero.

Being a function of the step (not a stateful scheduler) is what makes resuming exact: a run
restarted at step s uses the rate it would have used anyway.
"""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """The rate for update number `step` (0-based) of `total_steps`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
