"""The docs state facts that live in code; these tests fail when the two drift apart.

Each table is found under its heading, so a table can move within its file; when the code
changes (a new hyperparameter, another default, a new GPU family), update the table.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gtsrb.serve import predict
from gtsrb.train.gpu_families import SUPPORTED_FAMILIES
from gtsrb.train.hyperparameters import Hyperparameters
from pipelines.local import layout
from pipelines.sagemaker_local import runner

REPO = Path(__file__).resolve().parents[2]


def table_rows(markdown: Path, heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table under `heading` (a `## ` line)."""
    lines = markdown.read_text(encoding="utf-8").splitlines()
    if heading not in lines:
        pytest.fail(f"{markdown.name} has no heading {heading!r}")
    rows: list[list[str]] = []
    for line in lines[lines.index(heading) + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif rows:
            break  # the table ended
    return rows[2:]  # drop the header and the |---| line


def doc_value(text: str, like: object) -> object:
    """A table cell (`nag`, 0.02, 1e-4, True, None) as the Python type of `like`."""
    text = text.strip().strip("`")
    if like is None:  # an optional knob left unset
        return None if text == "None" else text
    if isinstance(like, bool):
        assert text in ("True", "False"), f"{text!r} is not True/False"
        return text == "True"
    if isinstance(like, (int, float)):
        return float(text)
    return text


def documented_hyperparameters() -> dict[str, tuple[str, str]]:
    """name -> (default cell, preset=cpu cell) from docs/training.md; one row may name several."""
    found: dict[str, tuple[str, str]] = {}
    for row in table_rows(REPO / "docs" / "training.md", "## Hyperparameters"):
        names = re.findall(r"`(\w+)`", row[0])
        defaults, cpu = row[1].split(", "), row[2].split(", ")
        assert len(defaults) == len(names), f"row {row[0]}: {len(names)} names but defaults {row[1]!r}"
        for i, name in enumerate(names):
            assert name not in found, f"hyperparameter {name} is documented twice"
            found[name] = (defaults[i], cpu[i] if len(cpu) == len(names) else cpu[0])
    return found


def test_every_hyperparameter_is_documented_once_and_nothing_else() -> None:
    fields = [f.name for f in dataclasses.fields(Hyperparameters)]
    assert sorted(documented_hyperparameters()) == sorted(fields)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Hyperparameters)])
def test_documented_defaults_and_cpu_preset_values_match_the_dataclass(field: str) -> None:
    default_cell, cpu_cell = documented_hyperparameters().get(field, ("", ""))
    default = getattr(Hyperparameters(), field)
    cpu = getattr(Hyperparameters.for_preset("cpu"), field)
    assert doc_value(default_cell, default) == default, f"docs/training.md: {field} default {default_cell!r}, code {default!r}"
    documented_cpu = default if cpu_cell == "same" else doc_value(cpu_cell, cpu)
    assert documented_cpu == cpu, f"docs/training.md: {field} with preset=cpu {cpu_cell!r}, code {cpu!r}"


def test_readme_gpu_table_is_the_supported_family_list() -> None:
    rows = table_rows(REPO / "README.md", "## Supported GPU instance types")
    documented = [(family, gpu, capability.split()[0]) for family, gpu, capability in rows]
    expected = [(f.family, f.gpu, f"{f.capability[0]}.{f.capability[1]}") for f in SUPPORTED_FAMILIES]
    assert documented == expected


def sample_summary() -> list[str]:
    """The sample summary of docs/local-pipeline.md (the first code block under "## What it prints")."""
    text = (REPO / "docs" / "local-pipeline.md").read_text(encoding="utf-8").split("## What it prints", 1)[1]
    return text.split("```\n", 2)[1].splitlines()


def test_the_sample_summary_is_what_the_code_prints_with_its_defaults(tmp_path: Path, capsys) -> None:
    import json

    from gtsrb.common import classes
    from pipelines import graph
    from pipelines.local import console
    from pipelines.local.options import DEMO_SIZE, DEMO_STEP, DEMO_THRESHOLD
    from testkit.pipelines import evaluation_report

    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation_report(0.98)))
    (tmp_path / "manifest.json").write_text(json.dumps({"counts": {s: {"total": 1} for s in ("train", "validation", "test")}}))
    steps = [DEMO_STEP, *graph.STEP_ORDER, graph.REGISTER]
    console.print_summary(console.Summary(tmp_path / "manifest.json", tmp_path, tmp_path / "work", "sqlite:///x", 0.98,
                                          DEMO_THRESHOLD, [console.StepReport(s, 1.0) for s in steps], "outcome"))
    printed = capsys.readouterr().out.strip().splitlines()
    sample = sample_summary()
    labels = [line.split()[0] for line in sample]
    assert labels == [line.split()[0] for line in printed] + ["total"]  # `total` is the command's own last line
    by_label = dict(zip(labels, sample, strict=True))
    assert f"(threshold {DEMO_THRESHOLD})" in by_label["accuracy"]
    tracks, frames, test_per_class = DEMO_SIZE
    counts = dict(re.findall(r"(\w+) (\d+)", by_label["data"].removeprefix("data")))
    assert int(counts["test"]) == classes.GTSRB_NUM_CLASSES * test_per_class
    assert int(counts["train"]) + int(counts["validation"]) <= classes.GTSRB_NUM_CLASSES * tracks * frames
    assert re.findall(r"(\w+) [\d.…]+s", by_label["time"]) == steps
    assert f"{graph.MODEL_PACKAGE_GROUP} version 1 ({graph.APPROVAL_STATUS})" in by_label["registry"]
    assert by_label["browse"].startswith("browse      make ui WORK=runs/demo  (MLflow store sqlite:///")


def test_the_work_layout_in_the_docs_names_the_codes_folders() -> None:
    """docs/local-pipeline.md draws WORK once; each top-level name in it is the one the code uses."""
    text = (REPO / "docs" / "local-pipeline.md").read_text(encoding="utf-8")
    tree = text.split("## WORK layout", 1)[1].split("```", 2)[1]
    names = [name for line in tree.splitlines()[2:] for name in line[:33].split()]  # the tree's first column
    drawn = {name.split("/")[0] for name in names if not name.startswith("<")}
    # the MLflow store is beside WORK (mlflow_registry.default_db), not in it; make predict writes its CSV there
    default_out = predict.parse_args(["image.png", "--model", "model"]).out.name
    code = {layout.DATA_DIR, layout.STEPS_DIR, *layout.STEP_DIRS.values(), default_out}
    assert drawn == code


def test_the_start_parameter_hyperparameters_of_sagemaker_local_are_the_codes() -> None:
    """docs/local-pipeline.md names each HP= key that make sagemaker-local overrides at start (`epochs` -> `Epochs`)."""
    text = (REPO / "docs" / "local-pipeline.md").read_text(encoding="utf-8")
    section = text.split("## make sagemaker-local", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"`(\w+)` -> `(\w+)`", section))
    overridden = {}
    for field in dataclasses.fields(Hyperparameters):
        parameters, _fixed = runner.split_hyperparameters({field.name: "1"})
        if parameters:  # one pipeline parameter at most per key
            (overridden[field.name],) = parameters
    assert documented == overridden
