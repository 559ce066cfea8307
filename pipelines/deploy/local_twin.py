"""The local twin of approval and deployment, on the MLflow registry of `make demo` (runs/mlflow.db).

    python -m pipelines.deploy.local_twin approve --version 1      # make approve VERSION=1
    python -m pipelines.deploy.local_twin promote --stage staging  # make deploy-local STAGE=staging
    python -m pipelines.deploy.local_twin uri --stage staging      # what make serve STAGE= serves
    python -m pipelines.deploy.local_twin path --model models:/gtsrb-traffic-signs@staging
                                                                   # the file make serve/predict hand the server
    python -m pipelines.deploy.local_twin path                     # the same for WORK's newest registered version

Approving sets the version tag `approval_status=Approved` (SageMaker's ModelApprovalStatus);
promoting points the MLflow alias named like the stage at the newest Approved version, as
deploy-model points the stage's endpoint at it. `path` resolves a models:/ URI (without --model:
the newest version registered by WORK's runs, named on stderr) to the registered model's folder or
model.tar.gz (a path is printed as is): the server in the images knows paths only. Exit codes:
0 done; 1 bad input; 2 no registry, no such version, or no Approved version (as deploy-model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gtsrb.common.failure import StepError
from pipelines import graph
from pipelines.deploy import stage_config
from pipelines.deploy.errors import EXIT_BAD_INPUT, EXIT_NO_VERSION, DeployError
from pipelines.local import mlflow_registry as registry

DEFAULT_WORK = Path("runs/demo")  # make demo's WORK


def model_uri(stage: str, model_name: str = graph.MODEL_PACKAGE_GROUP) -> str:
    """The registry URI the model server resolves for a stage: models:/<name>@<stage>."""
    return registry.model_uri(model_name, alias=stage)


def versions(work: Path, model_name: str) -> list:
    """Every registered version, or DeployError(EXIT_NO_VERSION) when there is no registry yet."""
    if not registry.store_exists(work):
        raise DeployError(EXIT_NO_VERSION, f"{registry.tracking_uri(work)}: no MLflow store yet; run make demo first (or pass WORK=).")
    return registry.find_versions(work, model_name)


def approve(work: Path, version: str, model_name: str = graph.MODEL_PACKAGE_GROUP) -> None:
    """Tag a version approval_status=Approved."""
    if not version.isdigit():
        raise DeployError(EXIT_BAD_INPUT, f"VERSION={version!r} is not a version number (e.g. VERSION=1).")
    known = sorted(int(v.version) for v in versions(work, model_name))
    if int(version) not in known:
        listed = ", ".join(map(str, known)) or "none"
        raise DeployError(EXIT_NO_VERSION, f"{model_name} has no version {version} in {work} (versions: {listed}).")
    registry.open_client(work).set_model_version_tag(model_name, version, registry.APPROVAL_TAG, graph.APPROVED)


def newest_approved(work: Path, model_name: str = graph.MODEL_PACKAGE_GROUP) -> str:
    """The highest Approved version number, or DeployError(EXIT_NO_VERSION)."""
    approved = [int(v.version) for v in versions(work, model_name) if v.tags.get(registry.APPROVAL_TAG) == graph.APPROVED]
    if not approved:
        raise DeployError(EXIT_NO_VERSION, f"{model_name} has no Approved version in {work}: run make approve VERSION=<n> first.")
    return str(max(approved))


def promote(work: Path, stage: str, model_name: str = graph.MODEL_PACKAGE_GROUP) -> str:
    """Point the stage's alias at the newest Approved version; that version."""
    version = newest_approved(work, model_name)
    registry.open_client(work).set_registered_model_alias(model_name, stage, version)
    return version


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """approve --version N | promote --stage S | uri --stage S, each with --work."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.local_twin", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["approve", "promote", "uri", "path"])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="make demo's WORK folder (default runs/demo)")
    parser.add_argument("--version", default=None, help="approve: the version number")
    parser.add_argument("--stage", default=None, help="promote/uri: the stage (alias) name, e.g. staging")
    parser.add_argument("--model", default=None, help="path: a model directory, model.tar.gz or models:/ URI "
                        "(default: the newest version registered by WORK's runs)")
    args = parser.parse_args(argv)
    needed = {"approve": "version", "path": None}.get(args.action, "stage")
    if needed and not getattr(args, needed):
        raise DeployError(EXIT_BAD_INPUT, f"{args.action} needs --{needed} (make: {needed.upper()}=...).")
    if args.stage in registry.RESERVED_ALIASES:
        raise DeployError(EXIT_BAD_INPUT, f"STAGE={args.stage}: MLflow reserves the alias {args.stage!r}; use a stage name "
                                          "such as staging or prod, or serve a version with MODEL=models:/<name>/<N>.")
    if args.stage is not None:
        stage_config.load(stage_config.config_path(args.stage))  # only the stages deploy/ defines
    return args


def run(argv: list[str] | None = None) -> None:
    """Do the action and say what was done."""
    args = parse_args(argv)
    name = graph.MODEL_PACKAGE_GROUP
    if args.action == "approve":
        approve(args.work, args.version)
        print(f"approved {name} version {args.version} ({registry.APPROVAL_TAG}={graph.APPROVED}) in {args.work}")
    elif args.action == "promote":
        version = promote(args.work, args.stage)
        print(f"stage {args.stage}: alias {model_uri(args.stage)} -> version {version} (newest Approved)")
    elif args.action == "uri":
        print(model_uri(args.stage))
    else:
        print(resolve_model(args.model, args.work))


def resolve_model(source: str | None, work: Path) -> Path:
    """The local path of a model source (None: WORK's newest registered version, named on stderr);
    a registry URI that cannot be resolved is DeployError(EXIT_NO_VERSION)."""
    try:
        if source is None:
            source, note = registry.newest_registered_uri(work)
            print(f">> model {note}", file=sys.stderr, flush=True)
        return registry.resolve(source, work)
    except StepError as err:
        raise DeployError(EXIT_NO_VERSION, str(err)) from None


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one sentence and the documented exit code on failure."""
    try:
        run(argv)
    except DeployError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(err.code)
    except StepError as err:  # the registry cannot be opened (a damaged mlflow.db)
        print(f"ERROR: {err}", file=sys.stderr)
        sys.exit(EXIT_NO_VERSION)


if __name__ == "__main__":
    main()
