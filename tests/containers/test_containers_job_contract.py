"""The twin and the SageMaker SDK's local mode hand a training script the same job.

One probe script (job_probe.py: it only reports its arguments, SM_* variables and /opt/ml files)
runs as a training job twice with the same channels and hyperparameters: through
pipelines.local.emulated_job.start_training_job, as `make demo` starts the train step, and through the
SDK's local mode in our image (a thin layer on the image under test: the probe in /opt/ml/code and
SAGEMAKER_PROGRAM naming it, as our image names train.py), started by the toolkit's `train`.
Differences that remain are named in docs/local-pipeline.md. Needs `make test-containers`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from gtsrb.common import sagemaker_job
from pipelines.local import emulated_job
from pipelines.sagemaker_local.runner import remove_job_containers
from testkit.containers import REPO, run

pytestmark = pytest.mark.containers

PROBE = Path(__file__).with_name("job_probe.py")
HPS = {"preset": "cpu", "epochs": "2", "lr": "0.1", "model": "gtsrb_cnn", "fit_on_validation": "True", "amp": "False"}
CHANNELS = ("train", "validation")
LOCAL_HOST = re.compile(r"^algo-1-[a-z0-9]{5}$")  # local mode's host name: algo-1 plus a random suffix


def variables_our_code_reads() -> set[str]:
    """Every SM_* name the image code (src/) mentions; SM_CHANNEL_ stands for each channel."""
    names = set()
    for path in (REPO / "src").rglob("*.py"):
        names |= set(re.findall(r"\bSM_[A-Z_]*[A-Z]", path.read_text()))
    return {n for n in names if n != "SM_CHANNEL"} | {f"SM_CHANNEL_{c.upper()}" for c in CHANNELS}


def channels(root: Path) -> dict[str, Path]:
    """One small file per channel."""
    folders = {}
    for name in CHANNELS:
        folders[name] = root / name
        folders[name].mkdir(parents=True)
        (folders[name] / f"{name}.rec").write_bytes(b"records")
    return folders


@pytest.fixture(scope="module")
def probe_image(docker: str, image: str, tmp_path_factory: pytest.TempPathFactory):
    """The image under test with the probe as its training script."""
    context = tmp_path_factory.mktemp("probe-image")
    shutil.copy(PROBE, context / PROBE.name)
    (context / "Dockerfile").write_text(f"FROM {image}\nCOPY {PROBE.name} /opt/ml/code/{PROBE.name}\n"
                                        f"ENV SAGEMAKER_PROGRAM={PROBE.name}\n")
    name = "gtsrb-job-contract-probe:latest"
    built = run([docker, "build", "-q", "--network", "host", "-t", name, str(context)],
                env={**os.environ, "DOCKER_BUILDKIT": "1"}, timeout=600)
    assert built.returncode == 0, built.stderr[-2000:]
    yield name
    run([docker, "rmi", "-f", name])


@pytest.fixture(scope="module")
def local_mode(probe_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """probe.json from a training job the SDK's local mode ran (file:// channels and output)."""
    import boto3
    from sagemaker.core.local import LocalSession

    root = tmp_path_factory.mktemp("local-mode")
    inputs = [{"ChannelName": name, "DataSource": {"FileDataSource": {
        "FileDataDistributionType": "FullyReplicated", "FileUri": folder.as_uri()}}}
        for name, folder in channels(root).items()]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "AWS_EC2_METADATA_DISABLED": "true"}.items():
            mp.setenv(key, value)
        session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"))
        session.config = {"local": {"container_root": str(root / "sdk-jobs")}}
        (root / "sdk-jobs").mkdir()
        try:
            session.sagemaker_client.create_training_job(
                "job-contract", {"TrainingImage": probe_image, "TrainingInputMode": "File"},
                {"S3OutputPath": (root / "out").as_uri()}, {"InstanceType": "local", "InstanceCount": 1},
                InputDataConfig=inputs, HyperParameters=HPS)
        finally:
            remove_job_containers(root / "sdk-jobs")
    with tarfile.open(root / "out" / "model.tar.gz") as tar:
        return json.load(tar.extractfile("probe.json"))


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """probe.json from the same job started by the twin (pipelines.local.emulated_job), on this machine."""
    root = tmp_path_factory.mktemp("twin")
    job = emulated_job.JobDirs(root / "job")
    env = emulated_job.start_training_job(job, channels(root), HPS, num_gpus=0)
    argv = [sys.executable, str(PROBE), *emulated_job.hyperparameters_to_args(HPS)]
    emulated_job.run_step_job("probe", argv, root / "probe.log", job.failure_file, env)
    return json.loads((job.model_dir / "probe.json").read_text())


def in_container_terms(report: dict) -> dict[str, str]:
    """SM_* values with the job's base folder written as /opt/ml and the host as algo-1."""
    values = {}
    for key, value in report["env"].items():
        value = value.replace(report["base"], str(sagemaker_job.OPT_ML))
        values[key] = re.sub(r"algo-1-[a-z0-9]{5}\b", emulated_job.HOST, value)
    return values


def test_the_script_gets_the_same_arguments(twin: dict, local_mode: dict) -> None:
    assert twin["argv"] == local_mode["argv"] == emulated_job.hyperparameters_to_args(HPS)


def test_the_same_files_below_opt_ml(twin: dict, local_mode: dict) -> None:
    assert twin["files"] == local_mode["files"]
    assert twin["config"]["hyperparameters.json"] == local_mode["config"]["hyperparameters.json"] == HPS


def test_the_config_files_agree_on_what_the_toolkit_reads(twin: dict, local_mode: dict) -> None:
    ours, theirs = twin["config"], local_mode["config"]
    for name in CHANNELS:
        assert ours["inputdataconfig.json"][name]["TrainingInputMode"] == theirs["inputdataconfig.json"][name]["TrainingInputMode"]
    assert len(ours["resourceconfig.json"]["hosts"]) == len(theirs["resourceconfig.json"]["hosts"]) == 1
    assert LOCAL_HOST.match(theirs["resourceconfig.json"]["current_host"])
    assert ours["resourceconfig.json"]["current_host"] == emulated_job.HOST


def test_every_variable_our_code_reads_has_the_same_value(twin: dict, local_mode: dict) -> None:
    ours, theirs = in_container_terms(twin), in_container_terms(local_mode)
    read = variables_our_code_reads()
    assert {"SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_NUM_GPUS", "SM_HOSTS"} <= read
    for name in sorted(read):
        assert ours.get(name) == theirs.get(name), name


def test_the_twin_sets_no_variable_the_toolkit_does_not(twin: dict, local_mode: dict) -> None:
    ours, theirs = in_container_terms(twin), in_container_terms(local_mode)
    assert set(ours) <= set(theirs)
    # The twin counts the host's CPUs, the container its own; the module is the probe here (train for ours).
    for name in sorted(set(ours) - {"SM_NUM_CPUS", "SM_MODULE_NAME"}):
        assert ours[name] == theirs[name], name


def test_hyperparameter_types_match(twin: dict, local_mode: dict) -> None:
    ours, theirs = json.loads(twin["env"]["SM_HPS"]), json.loads(local_mode["env"]["SM_HPS"])
    assert ours == theirs
    assert {k: type(v).__name__ for k, v in theirs.items()} == {
        "amp": "str", "epochs": "int", "fit_on_validation": "str", "lr": "float", "model": "str", "preset": "str"}


def test_toolkit_only_variables_are_read_by_no_code_of_ours(twin: dict, local_mode: dict) -> None:
    only_toolkit = set(local_mode["env"]) - set(twin["env"])
    assert only_toolkit, "the toolkit sets bookkeeping variables the twin leaves out (docs/local-pipeline.md)"
    assert not only_toolkit & variables_our_code_reads()
