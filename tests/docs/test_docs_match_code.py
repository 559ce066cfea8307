"""The docs state facts that live in code; these tests fail when the two drift apart.

Each table is found under its heading, so a table can move within its file; when the code
changes (a new hyperparameter, another default, a new GPU family), update the table.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from gtsrb.train.gpu_families import SUPPORTED_FAMILIES
from gtsrb.train.hyperparameters import Hyperparameters
from pipelines.local import layout, mlflow_registry

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


def test_the_work_layout_in_the_docs_names_the_codes_folders() -> None:
    """docs/local-pipeline.md draws WORK once; each top-level name in it is the one the code uses."""
    text = (REPO / "docs" / "local-pipeline.md").read_text(encoding="utf-8")
    tree = text.split("## WORK layout", 1)[1].split("```", 2)[1]
    names = [name for line in tree.splitlines()[2:] for name in line[:33].split()]  # the tree's first column
    drawn = {name.split("/")[0] for name in names if not name.startswith("<")}
    code = {layout.DATA_DIR, layout.STEPS_DIR, *layout.STEP_DIRS.values(), mlflow_registry.DB_FILE, mlflow_registry.ARTIFACTS_DIR}
    assert drawn == code
