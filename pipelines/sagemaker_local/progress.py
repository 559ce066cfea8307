"""Progress of a local-mode execution: a line per step as the SDK reports it, each step's log kept.

The SDK executes the steps one after another inside start_pipeline_execution, logs each step's
start and end (logger sagemaker.mlops.local.pipeline_entities), and writes its containers' output
to sys.stdout line by line. StepConsole turns the log records into `==> Step: ...` lines and tees
the containers' output into WORK/steps/<Step>.log (colour codes and carriage returns removed),
keeping MXNet's own C++ log lines off the console as `make demo` does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gtsrb.common.log_filter import MXNET_LOG_LINE

SDK_EXECUTION_LOGGER = "sagemaker.mlops.local.pipeline_entities"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MXNET = re.compile(MXNET_LOG_LINE.pattern.decode())


def announce(message: str) -> None:
    """A line of our own between the containers' output."""
    sys.__stdout__.write(f"\n==> {message}\n")
    sys.__stdout__.flush()


class StepConsole(logging.Handler):
    """Receives the SDK's step records; owns the current step's log file; stands in for sys.stdout."""

    def __init__(self, steps_dir: Path) -> None:
        super().__init__(logging.INFO)
        self.steps_dir = steps_dir
        self.log: TextIO | None = None
        self.started: dict[str, float] = {}

    # --- logging.Handler: the SDK's own step records
    def emit(self, record: logging.LogRecord) -> None:
        message, args = str(record.msg), record.args or ()
        if message.startswith("Starting pipeline step") and args:
            self.start_step(str(args[0]))
        elif message.startswith("Pipeline step") and args:
            status = "Succeeded" if "SUCCEEDED" in message else "Failed"
            seconds = time.monotonic() - self.started.get(str(args[0]), time.monotonic())
            announce(f"{args[0]}: {status} ({seconds:.1f}s)")

    def start_step(self, name: str) -> None:
        """Close the last step's log, open this one's."""
        self.close_log()
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        self.log = (self.steps_dir / f"{name}.log").open("w", encoding="utf-8")
        self.started[name] = time.monotonic()
        announce(f"{name}: running")

    def close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    # --- file-like: what the SDK writes to sys.stdout (its containers' output)
    def write(self, text: str) -> int:
        if self.log is not None:
            self.log.write(_ANSI.sub("", text).replace("\r\n", "\n"))
            self.log.flush()  # `tail -f` follows the job
        if not _MXNET.search(text):
            sys.__stdout__.write(text)
        return len(text)

    def flush(self) -> None:
        sys.__stdout__.flush()


@contextlib.contextmanager
def watching(steps_dir: Path) -> Iterator[StepConsole]:
    """For the block: the SDK's step records and its stdout go to a StepConsole."""
    console, logger = StepConsole(steps_dir), logging.getLogger(SDK_EXECUTION_LOGGER)
    saved = (logger.level, logger.propagate, sys.stdout)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its INFO lines would repeat ours
    logger.addHandler(console)
    sys.stdout = console  # type: ignore[assignment]
    try:
        yield console
    finally:
        sys.stdout = saved[2]
        logger.removeHandler(console)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        console.close_log()
