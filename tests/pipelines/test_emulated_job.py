"""pipelines.local.emulated_job: the job's output in its log, MXNet's own log lines kept off the console."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError
from pipelines.local import emulated_job

MXNET_LINE = b"[23:18:27] ../src/io/iter_image_recordio_2.cc:178: ImageRecordIOParser2: /w/train.rec, use 1 threads for decoding..\n"


def test_the_console_filter_drops_mxnet_lines_even_split_across_chunks() -> None:
    console = emulated_job.ConsoleFilter(emulated_job.MXNET_LOG_LINE)
    bar = b"\r 50%|#  | 5/10 [00:01<00:01]"
    shown = console.feed(b"epoch=1 loss=2\n" + bar + MXNET_LINE[:10])
    assert shown == b"epoch=1 loss=2\n" + bar  # the progress bar at once, the MXNet start held back
    shown += console.feed(MXNET_LINE[10:] + b"\r100%|##| 10/10\n") + console.flush()
    assert shown == b"epoch=1 loss=2\n" + bar + b"\r100%|##| 10/10\n"


def test_run_logged_keeps_everything_in_the_log(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = f"import sys; print('epoch=1', flush=True); sys.stderr.buffer.write({MXNET_LINE!r}); sys.exit(3)"
    log = tmp_path / "job.log"
    assert emulated_job.run_logged([sys.executable, "-c", code], log, hide=emulated_job.MXNET_LOG_LINE) == 3
    assert "epoch=1" in capfd.readouterr().out and "ImageRecordIOParser2" not in capfd.readouterr().out
    assert log.read_bytes() == b"epoch=1\n" + MXNET_LINE


def test_a_failed_step_job_reports_the_reason_the_step_wrote(tmp_path: Path) -> None:
    job = emulated_job.JobDirs(tmp_path)
    code = ("from gtsrb.common.failure import StepError, run_step\n"
            "def main(): raise StepError('the data folder is empty.')\n"
            "raise SystemExit(run_step(main))")
    env = {sagemaker_job.BASE_DIR_ENV: str(tmp_path)}
    with pytest.raises(StepError, match=r"^S failed: the data folder is empty\. \(full log: "):
        emulated_job.run_step_job("S", [sys.executable, "-c", code], tmp_path / "S.log", job.failure_file, env)


def test_the_job_config_is_one_host_with_every_channel(tmp_path: Path) -> None:
    import json

    job = emulated_job.JobDirs(tmp_path)
    emulated_job.write_job_config(job, {"train": tmp_path / "t"}, {"epochs": "1"})
    resources = json.loads((job.config / "resourceconfig.json").read_text())
    assert resources["hosts"] == [emulated_job.HOST] == [resources["current_host"]]
    assert list(json.loads((job.config / "inputdataconfig.json").read_text())) == ["train"]
