"""bench-real's cheap parts: the skip line, the opt-in, and the reference's im2rec lists from the real layout."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from bench import real_gtsrb
from bench.__main__ import OPT_IN

REPO = Path(__file__).resolve().parents[2]


def test_skipped_with_a_sentence_without_the_data(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "real_gtsrb"], cwd=REPO, capture_output=True, text=True,
                          env={"BENCH_REAL_DATA": str(tmp_path / "absent"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bench: real-accuracy skipped: no real GTSRB development set (official layout) at {tmp_path / 'absent'}"


def test_make_bench_does_not_run_it() -> None:
    assert "real_gtsrb" in OPT_IN
    makefile = (REPO / "Makefile").read_text()
    assert "$(PY) -m bench real_gtsrb" in makefile and "\t$(PY) -m bench\n" in makefile


def test_reference_lists_name_every_image_of_the_real_sample(sample_dir: Path, tmp_path: Path) -> None:
    train, test = real_gtsrb.official_lists(sample_dir, tmp_path)
    rows = [line.split("\t") for line in train.read_text().splitlines()]
    expected = sum(1 for gt in sample_dir.glob("GTSRB/Final_Training/Images/*/GT-*.csv")
                   for _ in csv.DictReader(open(gt, newline=""), delimiter=";"))
    assert len(rows) == expected == 1690
    assert all((sample_dir / path).is_file() and path.startswith("GTSRB/Final_Training/Images/") for _, _, path in rows)
    assert {int(label) for _, label, _ in rows} == set(range(43))
    tests = [line.split("\t") for line in test.read_text().splitlines()]
    assert len(tests) == 860 and all((sample_dir / p).is_file() for _, _, p in tests)
    assert [int(i) for i, _, _ in tests] == list(range(860))


@pytest.mark.parametrize("value", ["", "epochs=1"])
def test_extra_hyperparameters_come_from_the_environment(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_REAL_HP", value)
    assert real_gtsrb.extra_hyperparameters() == value.split()
