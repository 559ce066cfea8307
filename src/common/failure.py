"""Fail loudly at the boundary: one clear sentence in the log and in SageMaker's failure file.

SageMaker shows the first 1 KiB of `/opt/ml/output/failure` (training jobs) or
`/opt/ml/output/message` (processing jobs) as the job's FailureReason / ExitMessage.
"""

from __future__ import annotations

import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from gtsrb.common import sagemaker_job

REASON_SEPARATOR = "\n\n"  # a failure file: the one-sentence reason, a blank line, the traceback
ERROR_PREFIX = "ERROR: "  # a failed step's last words on stderr: ERROR_PREFIX + the sentence


class StepError(Exception):
    """A failure the user can act on; its message says what failed, where, and what to do."""


def first_line(err: BaseException) -> str:
    """An error's message in one line (MXNet's carry a C++ stack trace below it)."""
    for line in str(err).splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "Stack trace", "[bt]", "File ")):
            return line
    return type(err).__name__


def write_failed(folder: Path, what: str, err: BaseException) -> StepError:
    """One sentence for a write that failed (a full disk, no permission): the folder, the reason,
    the free space there."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    elif "Write incomplete" in str(err):  # MXNet's file stream: fwrite wrote less (no errno kept)
        reason = "the write was cut short"
    else:
        reason = first_line(err)
    return StepError(f"{folder}: cannot write {what} ({reason}; {free}); nothing was left under a final name. "
                     "Free space or give the job a larger volume, then run again.")


def output_dir() -> Path:
    """SageMaker's /opt/ml/output, moved with SAGEMAKER_BASE_DIR as the training toolkit does."""
    return sagemaker_job.base_dir() / sagemaker_job.OUTPUT_DIR


def write_failure(message: str, file_name: str) -> Path | None:
    """Write `message` to output_dir()/file_name if that folder can be created; return the path."""
    path = output_dir() / file_name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message, encoding="utf-8")
    except OSError:  # not on SageMaker and /opt/ml not writable: the log line is enough
        return None
    return path


def failure_reason(path: Path) -> str:
    """The one-sentence reason at the top of a failure file run_step wrote ("" when there is none)."""
    if not path.is_file():
        return ""
    return path.read_text(errors="replace").split(REASON_SEPARATOR)[0].strip()


def run_step(main: Callable[[], None], failure_file: str = sagemaker_job.TRAINING_FAILURE_FILE) -> int:
    """Run `main`; on any exception log one sentence, write the failure file, return exit code 1.

    `failure_file` is sagemaker_job.TRAINING_FAILURE_FILE or PROCESSING_FAILURE_FILE.
    A StepError's message is the sentence; anything else is reported as unexpected, with its
    type and traceback, so that a bug is never mistaken for bad input.
    """
    failed = failure_of(main)
    if failed is None:
        return 0
    sentence, trace = failed
    write_failure(f"{sentence}{REASON_SEPARATOR}{trace}", failure_file)
    report_failure(sentence)
    return 1


def failure_of(main: Callable[[], None]) -> tuple[str, str] | None:
    """Run `main`: None when it returns, else the one-sentence reason and the traceback."""
    try:
        main()
        return None
    except StepError as err:
        return str(err), traceback.format_exc()
    except KeyboardInterrupt:
        return "Interrupted by the user.", ""
    except Exception as err:  # noqa: BLE001 - the boundary: report every failure, then exit 1
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        return f"Unexpected error ({type(err).__name__}: {err}).", trace


def report_failure(sentence: str) -> None:
    """The sentence once, on stderr (a logging record too would print it twice in the job's log)."""
    print(f"{ERROR_PREFIX}{sentence}", file=sys.stderr, flush=True)
