"""`get-pipeline-definition`: print or write the SageMaker pipeline definition JSON (no AWS needed).

    get-pipeline-definition --kwargs '{"region": "eu-west-1", "role": "arn:aws:iam::123456789012:role/X"}' \
        --file-name build/pipeline-definition.json
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

from gtsrb.common.failure import StepError
from pipelines.sagemaker.cli_args import add_pipeline_args, build_pipeline, quiet_sdk, run_tool


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The template's flags: --module-name, --kwargs, --file-name."""
    parser = argparse.ArgumentParser(prog="get-pipeline-definition", description=__doc__.splitlines()[0])
    add_pipeline_args(parser)
    parser.add_argument("-f", "--file-name", type=Path, default=None, help="write here instead of stdout")
    return parser.parse_args(argv)


def write_definition(definition: str, file_name: Path | None) -> None:
    """Pretty JSON to the file (parents created) or to stdout."""
    text = json.dumps(json.loads(definition), indent=2, sort_keys=False) + "\n"
    if file_name is None:
        sys.stdout.write(text)
        return
    try:
        file_name.parent.mkdir(parents=True, exist_ok=True)
        file_name.write_text(text)
    except OSError as err:
        raise StepError(f"{file_name}: cannot write the definition ({err}).") from None
    print(f">> wrote the pipeline definition to {file_name}", file=sys.stderr)


def run(argv: list[str] | None = None) -> None:
    """Build the pipeline and write its definition."""
    args = parse_args(argv)
    quiet_sdk()
    pipeline = build_pipeline(args.module_name, args.kwargs)
    write_definition(pipeline.definition(), args.file_name)


def main(argv: list[str] | None = None) -> None:
    """Console script entry point: exit 0, or 1 with one ERROR sentence."""
    sys.exit(run_tool(partial(run, argv)))


if __name__ == "__main__":
    main()
