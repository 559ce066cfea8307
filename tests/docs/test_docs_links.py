"""Links in the manuals resolve, and nothing in the repository points to a file outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANUALS = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A notes file outside the repository and the machine's work folder; each split in two so that
# this file does not match itself.
OUTSIDE = re.compile(re.escape("NOTES" + ".md") + "|" + re.escape("/wo" + "rk/"))


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of the headings in `markdown` (lower case, punctuation dropped, - for space)."""
    headings = re.findall(r"^#+ (.+)$", markdown.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("manual", MANUALS, ids=lambda p: p.name)
def test_relative_links_resolve(manual: Path) -> None:
    for target in LINK.findall(manual.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (manual.parent / path).resolve() if path else manual
        assert resolved.exists(), f"{manual.name}: link {target} points to a missing file"
        if anchor:
            assert anchor in anchors(resolved), f"{manual.name}: link {target}: no such heading in {resolved.name}"


def test_no_tracked_file_points_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        if path.is_file() and path.suffix in {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".cfg", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, offenders
