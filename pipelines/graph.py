"""The step graph, defined once: what each step runs, what it reads and writes, and the condition.

Two runners use it: `pipelines.local` (all steps on this machine) and `pipelines.sagemaker.definition`
(the SageMaker Pipeline, built in `pipelines.sagemaker.step_builders`). Neither may name a step, a path
or a wire that is not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from gtsrb.common import contract


@dataclass(frozen=True)
class Source:
    """An output of an earlier step (or of the pipeline's raw-data parameter when step is None)."""

    step: str | None
    output: str


@dataclass(frozen=True)
class Input:
    """A processing input: where it comes from and where the step's container sees it."""

    source: Source
    path: PurePosixPath


@dataclass(frozen=True)
class ProcessingSpec:
    """A processing step: `python -m <module> <arguments>` in our image."""

    name: str
    module: str
    inputs: dict[str, Input]
    outputs: dict[str, PurePosixPath]
    arguments: tuple[str, ...] = ()

    def command(self) -> list[str]:
        """The container command line (the image's python runs the module)."""
        return ["python3", "-m", self.module, *self.arguments]


@dataclass(frozen=True)
class TrainingSpec:
    """The training step: the image's sagemaker-training entry point with these channels."""

    name: str
    channels: dict[str, Source]
    model_output: str = "model"  # the name other steps use for its model.tar.gz


@dataclass(frozen=True)
class ConditionSpec:
    """Register when the metric at json_path of the source's file is >= the threshold, else fail."""

    name: str
    source: Source
    file: str
    json_path: str
    if_true: str
    if_false: str


RAW_DATA = Source(step=None, output="data")

PREPARE = ProcessingSpec(
    name="PrepareData",
    module="gtsrb.prepare",
    inputs={"data": Input(RAW_DATA, PurePosixPath(contract.PREPARE_INPUT))},
    outputs={name: PurePosixPath(contract.PREPARE_OUTPUT) / name for name in (*contract.SPLITS, contract.MANIFEST_OUTPUT)},
    arguments=("--input", str(contract.PREPARE_INPUT), "--output", str(contract.PREPARE_OUTPUT)),
)

TRAIN = TrainingSpec(
    name="TrainModel",
    channels={channel: Source(PREPARE.name, split) for channel, split in contract.CHANNEL_SPLITS.items()},
)

EVALUATE = ProcessingSpec(
    name="EvaluateModel",
    module="gtsrb.evaluate",
    inputs={
        "model": Input(Source(TRAIN.name, TRAIN.model_output), PurePosixPath(contract.EVALUATE_MODEL_INPUT)),
        "test": Input(Source(PREPARE.name, contract.TEST_SPLIT), PurePosixPath(contract.EVALUATE_TEST_INPUT)),
    },
    outputs={"evaluation": PurePosixPath(contract.EVALUATE_OUTPUT)},
    arguments=(
        "--model", str(contract.EVALUATE_MODEL_INPUT),
        "--test", str(contract.EVALUATE_TEST_INPUT),
        "--output", str(contract.EVALUATE_OUTPUT),
    ),
)

REGISTER = "RegisterModel"
FAIL = "AccuracyBelowThreshold"

# What RegisterModel creates: a version in this model package group (SageMaker) or registered
# model (MLflow, local), waiting for a person to approve it as SageMaker's manual approval does.
MODEL_PACKAGE_GROUP = "gtsrb-traffic-signs"
# SageMaker's ModelApprovalStatus values; a new version starts at APPROVAL_STATUS.
PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
APPROVAL_STATUSES: tuple[str, ...] = (PENDING, APPROVED, REJECTED)
APPROVAL_STATUS = PENDING

CONDITION = ConditionSpec(
    name="CheckAccuracy",
    source=Source(EVALUATE.name, "evaluation"),
    file=contract.EVALUATION_FILE,
    json_path=contract.ACCURACY_JSON_PATH,
    if_true=REGISTER,
    if_false=FAIL,
)

STEP_ORDER: tuple[str, ...] = (PREPARE.name, TRAIN.name, EVALUATE.name, CONDITION.name)


def fail_message_parts(accuracy: object, threshold: object) -> list[object]:
    """The Fail step's message as text and values in order (the SageMaker side joins pipeline expressions)."""
    return ["Test accuracy ", accuracy, " is below the registration threshold ", threshold, "; the model was not registered."]


def fail_message(accuracy: object, threshold: object) -> str:
    """The Fail step's message with the values filled in (the local runner's)."""
    return "".join(map(str, fail_message_parts(accuracy, threshold)))
