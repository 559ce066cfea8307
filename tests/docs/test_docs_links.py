"""Links in the manuals resolve, and nothing in the repository points to a file outside it."""

from __future__ import annotations

import fnmatch
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


def ignored(relative: Path, patterns: list[str]) -> bool:
    """Whether a path matches one of .gitignore's patterns (the simple forms that file uses)."""
    for pattern in patterns:
        bare = pattern.strip("/")
        if pattern.startswith("/") and relative.parts[:1] == (bare,):
            return True
        if not pattern.startswith("/") and any(fnmatch.fnmatch(part, bare) for part in relative.parts):
            return True
    return False


def repository_files(root: Path) -> list[str]:
    """The tracked files: `git ls-files` in a clone, else every file .gitignore keeps (CodeBuild's ZIP has no .git)."""
    if (root / ".git").exists():
        return subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    lines = (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not ignored(p.relative_to(root), patterns))


def test_no_tracked_file_points_outside_the_repository() -> None:
    files = repository_files(REPO)
    offenders = []
    for name in files:
        path = REPO / name
        if path.is_file() and path.suffix in {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".txt", ".cfg", ""}:
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, offenders
