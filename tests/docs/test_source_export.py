"""The tests and tools run on a source tree without `.git`: CodePipeline hands CodeBuild a ZIP of the
commit, and its buildspec runs `make install`, then `make ci CI_TESTS=test-fast` (lint and the fast
suite) there before anything is pushed. This test runs that whole fast suite on a `git archive` export."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)  # the venv running this test: `make install`'s .venv under make test


def export(destination: Path) -> Path:
    """`git archive` of the working tree's tracked files (HEAD plus uncommitted edits), unpacked."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    ref = git("stash", "create") or "HEAD"  # a commit of the tracked edits, without touching the checkout
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True).stdout
    destination.mkdir()
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


def borrow_venv(tree: Path) -> None:
    """Stand in for CodeBuild's `make install` in the tree: link this checkout's venv as tree/.venv (the
    tests that call make use .venv/bin/python). The venv's inputs are dated 1970 in the tree, so that no
    make target there ever finds the stamp out of date and reinstalls into the borrowed venv."""
    (tree / ".venv").symlink_to(VENV, target_is_directory=True)
    for name in ("pyproject.toml", "requirements/dev.txt"):  # $(STAMP)'s prerequisites in the Makefile
        os.utime(tree / name, (0, 0))


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout to export from")
@pytest.mark.skipif(not (VENV / ".installed").is_file(), reason="needs the .venv of make install (run it through make test)")
def test_the_fast_suite_passes_on_a_git_archive_export(tmp_path: Path) -> None:
    tree = export(tmp_path / "source")
    assert not (tree / ".git").exists() and (tree / "Makefile").is_file()
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, check=False).returncode != 0
    borrow_venv(tree)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow and not containers",
                           "--basetemp", str(tmp_path / "pytest")], cwd=tree, capture_output=True, text=True, timeout=1800,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    # the whole fast suite (564 tests on 2026-12-05), not the few files that once called git
    assert passed and int(passed[1]) > 400 and "failed" not in summary and "error" not in summary, summary
