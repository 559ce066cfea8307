"""The graph's container paths (/opt/ml/processing/...) mapped to folders under WORK."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from pipelines import graph
from pipelines.local.emulated_job import JobDirs

# Where each graph step's outputs live under WORK.
STEP_DIRS: dict[str, str] = {graph.PREPARE.name: "prepare", graph.TRAIN.name: "train", graph.EVALUATE.name: "evaluation"}
PROCESSING: dict[str, graph.ProcessingSpec] = {s.name: s for s in (graph.PREPARE, graph.EVALUATE)}
STEPS_DIR = "steps"  # WORK/steps/<Step>.json|.log: done-markers and each step's full log
DATA_DIR = "data"  # the generated demo set, when no --data is given


def training_job(work: Path) -> JobDirs:
    """The training job's /opt/ml under WORK (so /opt/ml/checkpoints is WORK/train/checkpoints)."""
    return JobDirs(work / STEP_DIRS[graph.TRAIN.name])


def output_root(spec: graph.ProcessingSpec) -> PurePosixPath:
    """The container folder all of a processing step's outputs are below."""
    return PurePosixPath(os.path.commonpath([str(p) for p in spec.outputs.values()]))


def processing_outputs(spec: graph.ProcessingSpec, work: Path) -> dict[str, Path]:
    """A processing step's outputs under WORK/<step dir>, keeping their layout below a common root."""
    root = output_root(spec)
    return {name: work / STEP_DIRS[spec.name] / path.relative_to(root) for name, path in spec.outputs.items()}


def step_outputs(step: str, work: Path) -> dict[str, Path]:
    """The local outputs of any graph step, by output name."""
    if step == graph.TRAIN.name:
        return {graph.TRAIN.model_output: training_job(work).archive}
    return processing_outputs(PROCESSING[step], work)


def local_source(source: graph.Source, work: Path, data: Path) -> Path:
    """Where a graph source (an earlier step's output, or the raw data) is on this machine."""
    return data if source.step is None else step_outputs(source.step, work)[source.output]


def container_mapping(spec: graph.ProcessingSpec, work: Path, data: Path) -> dict[PurePosixPath, Path]:
    """Container path -> local path for a processing step's inputs, outputs and their output root."""
    mapping = {inp.path: local_source(inp.source, work, data) for inp in spec.inputs.values()}
    mapping.update({spec.outputs[name]: path for name, path in processing_outputs(spec, work).items()})
    mapping[output_root(spec)] = work / STEP_DIRS[spec.name]
    return mapping


def local_arguments(arguments: tuple[str, ...] | list[str], mapping: dict[PurePosixPath, Path]) -> list[str]:
    """The arguments with every container path (or a path below one) replaced by its local path."""
    local = []
    for arg in arguments:
        for container, here in sorted(mapping.items(), key=lambda kv: -len(str(kv[0]))):
            if arg == str(container) or arg.startswith(f"{container}/"):
                arg = str(here) + arg[len(str(container)) :]
                break
        local.append(arg)
    return local
