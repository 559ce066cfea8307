"""The image code (src/, the package `gtsrb`) never imports host code: the images do not contain it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
HOST_PACKAGES = ("pipelines", "containers", "bench")  # run on a laptop or the CI runner only


def host_imports(source: str) -> list[str]:
    """Every module a Python source imports from HOST_PACKAGES, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [name for name in names if name.split(".")[0] in HOST_PACKAGES]
    return found


def test_the_checker_sees_module_level_and_lazy_imports() -> None:
    source = "import bench\nfrom gtsrb.common import contract\ndef f():\n    from pipelines.local import mlflow_registry\n"
    assert host_imports(source) == ["bench", "pipelines.local"]


def test_no_gtsrb_module_imports_pipelines_containers_or_bench() -> None:
    offenders = {str(f.relative_to(SRC.parent)): host_imports(f.read_text()) for f in sorted(SRC.rglob("*.py"))}
    assert {f: names for f, names in offenders.items() if names} == {}
