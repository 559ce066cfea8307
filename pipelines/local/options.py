"""What one local run uses: the parsed command line, the demo set's size, the hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gtsrb.demo_data import writer as demo_writer

DEMO_THRESHOLD = 0.90  # the default demo reaches ~0.98-0.99 on 2 cores (docs/accuracy.md): a clear margin
DEMO_STEP = "GenerateDemoData"
# The demo set: tracks per class, frames per track, test images per class (43 classes); the
# generator's defaults, so `make demo-data` and `make demo` write the same set.
DEMO_SIZE: tuple[int, int, int] = (
    demo_writer.DEFAULT_TRACKS_PER_CLASS, demo_writer.DEFAULT_FRAMES_PER_TRACK, demo_writer.DEFAULT_TEST_PER_CLASS
)
DEMO_SEED = 0


@dataclass
class RunOptions:
    """What both local runners take from the command line (pipelines.local.cli.add_run_flags)."""

    work: Path
    data: Path | None = None
    threshold: float = DEMO_THRESHOLD
    hyperparameters: dict[str, str] = field(default_factory=dict)
    demo_size: tuple[int, int, int] = DEMO_SIZE
    instances: int = 1  # training instances (make demo: processes on 127.0.0.1, pipelines.local.emulated_hosts)


@dataclass
class Options(RunOptions):
    """make demo's command line, parsed."""

    use_cache: bool = True


def demo_data_args(size: tuple[int, int, int]) -> list[str]:
    """The demo-data generator's flags (seed and size; not the output folder, which is WORK's)."""
    tracks, frames, test = size
    return ["--seed", str(DEMO_SEED), "--tracks-per-class", str(tracks), "--frames-per-track", str(frames),
            "--test-per-class", str(test)]


def visible_gpus() -> int:
    """How many GPUs MXNet sees (the train step uses all of them; none means the CPU preset)."""
    import mxnet as mx

    return mx.context.num_gpus()


def resolve_hyperparameters(overrides: dict[str, str], num_gpus: int) -> tuple[dict[str, str], int]:
    """The hyperparameters to pass (`preset=cpu` without a GPU, then the overrides), checked; and the image size.

    Only these keys are passed, as strings, as SageMaker passes them: the train step's own
    defaults and preset fill in the rest, so the local run and a training job cannot differ.
    """
    from gtsrb.train.hyperparameters import Hyperparameters

    merged = {**({"preset": "cpu"} if num_gpus == 0 else {}), **overrides}
    typed = Hyperparameters.from_mapping(merged)  # a StepError naming the key when one is bad
    return merged, int(typed.image_size)
