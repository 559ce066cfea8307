"""The images' entry point (after tini): `train` waits for our script on SIGTERM; all else passes.

SageMaker runs `docker run IMAGE train` and, on a spot interruption, StopTrainingJob or the max
runtime, sends SIGTERM to PID 1; `tini -g` passes it to the whole process group. The
sagemaker-training toolkit has no handler and would die at once, tini would exit 143 and the
container would go before our script writes its mid-epoch checkpoint. So `train` runs the toolkit
here with a SIGTERM handler that only logs: the toolkit keeps waiting for the script, which
checkpoints and exits 0, and the toolkit then exits with the script's code. A handler, not
SIG_IGN: an ignored signal stays ignored in the children, a handler is reset when they exec.

Any other command (`serve`, `bash`, `python3 -m ...`) replaces this process unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

EXIT_NOT_FOUND = 127  # what a shell returns for an unknown command


def _toolkit_waits(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM in the toolkit: say so, and keep waiting for the script (which got it too)."""
    print(f"entrypoint: signal {signum}: the training script checkpoints and exits; the toolkit waits for it",
          file=sys.stderr, flush=True)


def run_toolkit_train() -> None:
    """The toolkit's `train` console script, with SIGTERM handled instead of fatal."""
    signal.signal(signal.SIGTERM, _toolkit_waits)
    from sagemaker_training.cli.train import main as toolkit_train

    toolkit_train()


def main(argv: list[str] | None = None) -> None:
    """`train` -> the toolkit under our handler; anything else -> exec it as given."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["train"]:
        run_toolkit_train()
        return
    if not argv:
        argv = ["bash"]  # `docker run -it IMAGE`: a shell, as the base image's CMD
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        print(f"entrypoint: cannot run {argv[0]!r}: {err.strerror}", file=sys.stderr)
        sys.exit(EXIT_NOT_FOUND)


if __name__ == "__main__":
    main()
