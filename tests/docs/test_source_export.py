"""The tests and tools run on a source tree without `.git`: CodePipeline hands CodeBuild a ZIP of the
commit, and its buildspec runs `make test-fast` there before anything is pushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The suites that once needed git (docs links, the deploy CLI's git SHA) and the CI files.
SUITES = ["tests/docs", "tests/pipelines/test_ci_files.py", "tests/pipelines/test_deploy.py"]


def export(destination: Path) -> Path:
    """`git archive` of the working tree's tracked files (HEAD plus uncommitted edits), unpacked."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    ref = git("stash", "create") or "HEAD"  # a commit of the tracked edits, without touching the checkout
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True).stdout
    destination.mkdir()
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


@pytest.mark.slow
@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout to export from")
def test_fast_suites_pass_on_a_git_archive_export(tmp_path: Path) -> None:
    tree = export(tmp_path / "source")
    assert not (tree / ".git").exists() and (tree / "Makefile").is_file()
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, check=False).returncode != 0
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow and not containers",
                           *SUITES], cwd=tree, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
