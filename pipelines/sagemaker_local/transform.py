"""`make transform LOCAL=1`: the Batch Transform job `make transform` starts on SageMaker, executed
by the SageMaker SDK's own local mode (LocalSession) with the cpu image on this machine.

    python -m pipelines.sagemaker_local.transform --input DIR|FILE.rec --output DIR --tag TAG \
        [--model DIR|model.tar.gz|models:/<name>/<version>] [--work WORK] [--registry HOST]

The request is the one `make transform` sends (pipelines.deploy.transform.job_request and its InputKind:
content types, split, batch strategy, payload and assembly from the server's protocol), with the
paths as file:// URIs and the instance type `local`. The Model is the cpu image and the model (a
folder, a model.tar.gz, or a version of WORK's MLflow registry; default: the newest registered),
checked here first as the server checks it. What local mode lacks or does differently, and what
this module does about it:

- the SDK 3.27.0 has no RecordIO splitter (it raises NotImplementedError since sagemaker.amazon
  was removed): record_split() supplies one for the job, gtsrb.common.recordio_format.framed_records;
- it reads only a folder's own files (SageMaker reads every object under a prefix): a folder
  with files in subfolders is refused instead of being scored in part;
- it writes a refused request's error answer into the .out and calls the job Completed (SageMaker
  fails the job): every answer is read back, and refused inputs fail the command, each named;
- it serves on port 8080 and hands the container the session's AWS credentials: a free port and
  throw-away credentials (the server needs none), no AWS call at all;
- a job that fails halfway leaves its container running, and its telemetry wrapper swallows
  Ctrl-C: the container is stopped as the SDK stops a finished one, removed by its label, and
  an interrupt is remembered and raised again.

Exit codes (make transform's): 0 every input answered; 1 bad input, no Docker engine, compose or
image (nothing started); 2 no such or unusable model; 3 the job failed or an input was refused;
130 interrupted (Ctrl-C, SIGTERM: the container is removed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gtsrb.common.failure import StepError
from gtsrb.common.recordio_format import RecordIOError, framed_records
from gtsrb.serve import protocol
from pipelines import images
from pipelines.deploy import transform
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_DEPLOY_FAILED, EXIT_NO_VERSION, DeployError, exit_code
from pipelines.deploy.local_twin import resolve_model
from pipelines.sagemaker_local import local_s3, preflight
from pipelines.sagemaker_local.cli import EXIT_INTERRUPTED
from pipelines.sagemaker_local.runner import LOCAL_INSTANCE

MODEL_NAME = "gtsrb-local-transform"  # the SDK keeps local Models in memory, per process
CONTAINER_LABEL = "gtsrb.transform"  # on the job's container: found and removed by it, whatever the SDK left
INTERRUPTS: list[int] = []  # signals received while the job runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags; make transform LOCAL=1 passes them."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.sagemaker_local.transform",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="a folder of images, or a .rec file")
    parser.add_argument("--output", type=Path, required=True, help="the folder for the answers (<file>.out)")
    parser.add_argument("--model", default=None,
                        help="model folder, model.tar.gz or models:/<name>/<version|@alias> (default: WORK's newest registered)")
    parser.add_argument("--work", type=Path, default=Path("runs/demo"), help="the WORK whose MLflow registry resolves models:/")
    parser.add_argument("--tag", required=True, help="tag of the cpu image (gtsrb-mxnet-cpu:<tag>; make passes the git SHA)")
    parser.add_argument("--registry", default="", help="registry host of the image (default: a local name)")
    return parser.parse_args(argv)


def checked_input(path: Path) -> tuple[Path, transform.InputKind, int]:
    """The input, its kind and how many images or records it holds; DeployError(EXIT_BAD_INPUT) if unusable."""
    if not path.exists():
        raise DeployError(EXIT_BAD_INPUT, f"INPUT={path}: no such folder or .rec file.")
    kind = transform.input_kind(str(path))
    if kind is transform.RECORDS:
        try:
            return path.resolve(), kind, len(framed_records(path.read_bytes()))
        except RecordIOError as err:
            raise DeployError(EXIT_BAD_INPUT, f"INPUT={path} is not a RecordIO file: {err}.") from None
    if path.is_file():
        return path.resolve(), kind, 1
    nested = [p for p in sorted(path.glob("*/**/*")) if p.is_file()]
    if nested:
        raise DeployError(EXIT_BAD_INPUT, f"INPUT={path} has files in subfolders ({len(nested)}, e.g. {nested[0]}), which "
                                          "the SDK's local mode does not read (it sends only a folder's own files): pass "
                                          "a folder of image files.")
    count = sum(1 for p in path.iterdir() if p.is_file())
    if not count:
        raise DeployError(EXIT_BAD_INPUT, f"INPUT={path} holds no files: nothing to transform.")
    return path.resolve(), kind, count


def model_folder(model: str | None, work: Path, scratch: Path) -> Path:
    """The model, resolved and checked as `make serve` does, in a folder of its own under `scratch`
    (the SDK unpacks any archive it finds in the folder it mounts: never the user's)."""
    from gtsrb.serve.cli import checked_model

    path = resolve_model(model, work)  # make serve's resolution (DeployError EXIT_NO_VERSION)
    if not path.exists():
        raise DeployError(EXIT_NO_VERSION, f"MODEL={model}: no such model folder or model.tar.gz.")
    checked = checked_model(path, scratch)  # the server's own check; it prints its ERROR line
    if checked is None:
        raise DeployError(EXIT_NO_VERSION, f"MODEL={model} cannot be served (the check above says why).")
    folder = scratch / "model"
    if checked != folder:
        shutil.copytree(checked, folder)
    return folder


@contextlib.contextmanager
def record_split() -> Iterator[None]:
    """For the block: the SDK's RecordIO splitter cuts whole records, framing kept (it raises otherwise)."""
    from sagemaker.core.local import data  # the SDK is pinned exactly

    def split(self, file: str) -> Iterator[bytes]:
        yield from framed_records(Path(file).read_bytes())

    original = data.RecordIOSplitter.split
    data.RecordIOSplitter.split = split
    try:
        yield
    finally:
        data.RecordIOSplitter.split = original


def local_session(scratch: Path, label: str):
    """A LocalSession that can reach no AWS account, its jobs under `scratch`, serving on a free port,
    its container labelled (local.container_config: compose options of every container it starts)."""
    import boto3
    from sagemaker.core.local import LocalSession

    scratch.mkdir(parents=True, exist_ok=True)
    session = LocalSession(boto_session=boto3.Session(region_name=local_s3.REGION, aws_access_key_id="local",
                                                      aws_secret_access_key="local"))
    local = {**(session.config or {}).get("local", {}), "container_root": str(scratch), "serving_port": free_port(),
             "container_config": {"labels": {CONTAINER_LABEL: label}}}
    session.config = {**(session.config or {}), "local": local}
    return session


def remove_containers(label: str) -> None:
    """Remove every container labelled with this run's `label`."""
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={CONTAINER_LABEL}={label}"], capture_output=True,
                            text=True, timeout=60, check=False)
    if listed.stdout.split():
        subprocess.run(["docker", "rm", "-f", *listed.stdout.split()], capture_output=True, timeout=120, check=False)


def free_port() -> int:
    """A TCP port nobody listens on now (compose publishes the container's 8080 there)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def run_job(session, image: str, model: Path, source: Path, output: Path, kind: transform.InputKind) -> None:
    """CreateModel and CreateTransformJob on the SDK's LocalSagemakerClient (it returns when the job ends)."""
    from pipelines.sagemaker.definition import offline_sdk

    name = f"{MODEL_NAME}-{time.strftime('%Y%m%d%H%M%S')}"
    request = transform.job_request(name, MODEL_NAME, source.as_uri(), output.resolve().as_uri(), kind, LOCAL_INSTANCE, 1)
    print(f">> transform job {name} (SageMaker SDK local mode): {source} as {kind.content_type} -> {output}", flush=True)
    with offline_sdk(local_s3.REGION), record_split():  # no telemetry
        session.sagemaker_client.create_model(ModelName=MODEL_NAME, ExecutionRoleArn="local", PrimaryContainer={
            "Image": image, "ModelDataUrl": model.as_uri(), "Environment": {}})
        try:
            session.sagemaker_client.create_transform_job(**request)
        except (RuntimeError, ValueError, OSError) as err:  # what the SDK raises: a sentence, no AWS error
            raise DeployError(EXIT_DEPLOY_FAILED, f"the local transform job {name} failed: {err}") from None
        finally:
            stop_serving(name)
    if INTERRUPTS:  # the SDK's telemetry wrapper returns from a `finally`, which swallows KeyboardInterrupt
        raise KeyboardInterrupt


def stop_serving(name: str) -> None:
    """Stop the container of a job that failed or was interrupted as the SDK stops a finished one
    (compose ends, its thread too: no traceback from it when the container goes)."""
    from sagemaker.core.local.local_session import LocalSagemakerClient  # its jobs, by name (SDK pinned)

    job = LocalSagemakerClient._transform_jobs.get(name)
    if job is not None and job.container is not None and job.state != job._COMPLETED:
        job.container.stop_serving()


def interrupt(signum: int, frame: object) -> None:
    """Ctrl-C and SIGTERM: remembered (the SDK may swallow the KeyboardInterrupt), then raised."""
    INTERRUPTS.append(signum)
    raise KeyboardInterrupt


def answer_problem(line: bytes) -> str:
    """'' for a valid prediction answer, else what is wrong with it (the server's own error sentence)."""
    try:
        document = json.loads(line)
    except ValueError:
        return f"not JSON: {line[:100]!r}"
    if isinstance(document, dict) and protocol.ERROR_KEY in document:
        return f"refused ({str(document[protocol.ERROR_KEY]).rstrip('.')})"
    try:
        protocol.check_prediction(document, None)
    except ValueError as err:
        return str(err)
    return ""


def check_answers(source: Path, output: Path, kind: transform.InputKind, count: int) -> tuple[int, list[str]]:
    """(answers that are predictions, a sentence per input without one): every .out read back."""
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())
    answered, problems = 0, []
    for file in files:
        out = output / f"{file.name}.out"
        if not out.is_file():
            problems.append(f"{file.name}: no answer ({out.name} was not written)")
            continue
        lines = out.read_bytes().splitlines() if kind is transform.RECORDS else [out.read_bytes()]
        found = [answer_problem(line) for line in lines if line.strip()]
        answered += found.count("")
        problems += [f"{file.name}: {problem}" for problem in dict.fromkeys(found) if problem]
    if kind is transform.RECORDS and answered != count and not problems:
        problems.append(f"{source.name}: {answered} answers for {count} records")
    return answered, problems


def run(argv: list[str] | None = None) -> int:
    """Check the input, the Docker side and the model; run the job; read every answer back."""
    args = parse_args(argv)
    source, kind, count = checked_input(args.input)
    image = images.image_uri(args.registry, "cpu", args.tag)
    try:
        preflight.check_all(image)
    except StepError as err:
        raise DeployError(EXIT_BAD_INPUT, str(err)) from None
    scratch = Path(tempfile.mkdtemp(prefix="gtsrb-transform-"))
    try:
        model = model_folder(args.model, args.work, scratch)
        args.output.mkdir(parents=True, exist_ok=True)
        run_job(local_session(scratch / "jobs", scratch.name), image, model, source, args.output, kind)
    finally:
        remove_containers(scratch.name)  # a failed job leaves its container running, a good one stopped
        shutil.rmtree(scratch, ignore_errors=True)
    answered, problems = check_answers(source, args.output, kind, count)
    unit = "records" if kind is transform.RECORDS else "images"
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise DeployError(EXIT_DEPLOY_FAILED, f"only {answered} of {count} {unit} got a prediction (SageMaker would "
                                              f"fail the job): {shown}. Every answer is in {args.output}.")
    print(f"transform: {answered} of {count} {unit} answered ({kind.accept}) in {args.output}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one sentence on stderr and the documented exit code on failure; Ctrl-C
    or SIGTERM removes the job's container and exits 130."""
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        code = exit_code(lambda: run(argv))
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    main()
