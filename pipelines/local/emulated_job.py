"""One emulated SageMaker job on this machine: what SageMaker gives a job, from the host's side.

SageMaker lays out /opt/ml for a job (input/config/*.json, input/data/<channel>, model, output,
checkpoints), starts the script with the toolkit's SM_* environment and `--key value`
hyperparameters, streams its output to CloudWatch, reads the failure file when it exits non-zero
and packs the model folder into model.tar.gz. The local runner (pipelines.local),
containers/train_local.py (the job in our image under docker) and the tests all do it with this
module; the names of the tree come from gtsrb.common.sagemaker_job, which the images contain.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gtsrb.common import contract, sagemaker_job
from gtsrb.common.failure import StepError, failure_reason
from gtsrb.common.log_filter import MXNET_LOG_LINE, ConsoleFilter
from gtsrb.common.sagemaker_job import hyperparameters_to_args

HOST = "algo-1"  # SageMaker's name for the first (here: only) instance
TRAINING_MODULE = "train"  # SM_MODULE_NAME: the script the toolkit runs
# What of a step's output the local pipeline's console leaves out: MXNet's lines, and the step's
# own `ERROR: <sentence>` (the runner prints it once, with the step's name and its log).
STEP_CONSOLE_HIDE = re.compile(MXNET_LOG_LINE.pattern + rb"|(?m:^ERROR: [^\n]*\n)")
_CHUNK = 65536


@dataclass(frozen=True)
class JobDirs:
    """A training job's /opt/ml on this machine (SAGEMAKER_BASE_DIR) and what lives below it."""

    base: Path

    @property
    def model_dir(self) -> Path:  # SM_MODEL_DIR
        return self.base / sagemaker_job.MODEL_DIR

    @property
    def archive(self) -> Path:  # what SageMaker uploads: model.tar.gz of SM_MODEL_DIR
        return self.base / contract.MODEL_ARCHIVE

    @property
    def checkpoints(self) -> Path:  # synced with checkpoint_s3_uri on SageMaker
        return self.base / sagemaker_job.CHECKPOINTS_DIR

    @property
    def output(self) -> Path:  # the failure file, SM_OUTPUT_DATA_DIR
        return self.base / sagemaker_job.OUTPUT_DIR

    @property
    def failure_file(self) -> Path:
        return self.output / sagemaker_job.TRAINING_FAILURE_FILE

    @property
    def config(self) -> Path:  # input/config: the three JSON files the toolkit reads
        return self.base / sagemaker_job.INPUT_DIR / "config"

    @property
    def data(self) -> Path:  # input/data/<channel>
        return self.base / sagemaker_job.INPUT_DIR / "data"

    def start_fresh(self) -> None:
        """No model, output, config or archive of an earlier run; the checkpoints stay (a resumed job)."""
        for path in (self.model_dir, self.output, self.base / sagemaker_job.INPUT_DIR):
            shutil.rmtree(path, ignore_errors=True)
        self.archive.unlink(missing_ok=True)

    def archive_model(self) -> Path:
        """What SageMaker does after a training job: tar SM_MODEL_DIR into model.tar.gz."""
        from gtsrb.common.model_io import archive_model

        if not self.model_dir.is_dir() or not any(self.model_dir.iterdir()):
            raise StepError(f"the training job left no model in {self.model_dir}; see its log.")
        return archive_model(self.model_dir, self.archive)


def toolkit_value(text: str) -> object:
    """A hyperparameter as the toolkit puts it into SM_HPS: JSON when it parses ("2" -> 2), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _compact(value: object) -> str:
    """JSON as the toolkit writes it into SM_* variables (no spaces)."""
    return json.dumps(value, separators=(",", ":"))


def training_env(job: JobDirs, channels: dict[str, Path], hps: dict[str, str], num_gpus: int) -> dict[str, str]:
    """The SM_* variables the sagemaker-training toolkit sets for the script (single host).

    The toolkit sets more (SM_TRAINING_ENV, SM_FRAMEWORK_*, SM_INSTANCE_GROUPS*, ...): its own
    bookkeeping, which no code of ours reads (tests/containers checks both against local mode)."""
    env = {
        sagemaker_job.BASE_DIR_ENV: str(job.base),
        "SM_MODEL_DIR": str(job.model_dir),
        "SM_OUTPUT_DIR": str(job.output),
        "SM_OUTPUT_DATA_DIR": str(job.output / "data"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(job.output / "intermediate"),
        "SM_INPUT_DIR": str(job.base / sagemaker_job.INPUT_DIR),
        "SM_INPUT_CONFIG_DIR": str(job.config),
        "SM_CHANNELS": _compact(sorted(channels)),
        "SM_HPS": _compact({key: toolkit_value(value) for key, value in sorted(hps.items())}),
        "SM_USER_ARGS": _compact(hyperparameters_to_args(hps)),
        "SM_NUM_GPUS": str(num_gpus),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        "SM_HOSTS": _compact([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_MODULE_NAME": TRAINING_MODULE,
    }
    env.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
    env.update({f"SM_HP_{key.upper()}": value for key, value in hps.items()})
    return env


def write_job_config(job: JobDirs, channels: dict[str, Path], hps: dict[str, str], host: str = HOST,
                     interface: str = "eth0", hosts: list[str] | None = None) -> None:
    """The three JSON files the toolkit reads from /opt/ml/input/config (all values strings).

    The toolkit resolves every host by DNS before it runs the script: a job run without
    SageMaker's name service passes host="localhost". `hosts`: every instance of the job (default: this one).
    """
    job.config.mkdir(parents=True, exist_ok=True)
    (job.config / "hyperparameters.json").write_text(json.dumps(hps, indent=2))
    resources = {"current_host": host, "hosts": hosts or [host], "network_interface_name": interface}
    (job.config / "resourceconfig.json").write_text(json.dumps(resources, indent=2))
    data = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"} for name in channels}
    (job.config / "inputdataconfig.json").write_text(json.dumps(data, indent=2))


def start_training_job(job: JobDirs, channels: dict[str, Path], hps: dict[str, str], num_gpus: int) -> dict[str, str]:
    """What SageMaker does before it starts the script: a fresh model/output, the config files and
    input/data/<channel> in place; returns the script's SM_* environment (channels under input/data)."""
    job.start_fresh()
    write_job_config(job, channels, hps)
    link_channels(job, channels)
    return training_env(job, {name: job.data / name for name in channels}, hps, num_gpus)


def link_channels(job: JobDirs, channels: dict[str, Path]) -> None:
    """input/data/<channel> for each channel, as SageMaker downloads it (here: a symlink)."""
    job.data.mkdir(parents=True, exist_ok=True)
    for name, folder in channels.items():
        (job.data / name).symlink_to(folder, target_is_directory=True)


def _show(data: bytes) -> None:
    """Raw bytes to the console (keeps tqdm's carriage returns), text where stdout has no buffer."""
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        out.write(data)
    else:
        sys.stdout.write(data.decode(errors="replace"))
    sys.stdout.flush()


def run_logged(argv: list[str], log_file: Path, env: dict[str, str] | None = None,
               hide: re.Pattern[bytes] | None = None) -> int:
    """Run `argv`, its output in `log_file` and on the console (less lines matching `hide`);
    return its exit code. Ctrl-C/SIGTERM reach the job as SIGTERM first, so that it can save what
    it can (the train step checkpoints), as SageMaker stops a job."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    console = ConsoleFilter(hide)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_file.open("wb") as log, subprocess.Popen(
        argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            while chunk := os.read(proc.stdout.fileno(), _CHUNK):
                log.write(chunk)
                log.flush()  # `tail -f` on the log follows the job as it runs
                _show(console.feed(chunk))
            _show(console.flush())
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            raise
        return proc.wait()


def run_step_job(step: str, argv: list[str], log_file: Path, failure_file: Path, env: dict[str, str] | None = None,
                 hide: re.Pattern[bytes] | None = STEP_CONSOLE_HIDE) -> None:
    """run_logged for a pipeline step: StepError with the job's own failure reason on a non-zero exit."""
    failure_file.unlink(missing_ok=True)
    code = run_logged(argv, log_file, env, hide)
    if code != 0:
        raise StepError(f"{step} failed: {failure_reason(failure_file) or f'exit code {code}'} (full log: {log_file})")
