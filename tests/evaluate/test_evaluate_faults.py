"""Test data that would evaluate to wrong numbers without an error: packed for another size,
a truncated or stale .idx, counts that disagree with prepare's manifest, a fractional label."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_evaluate_bad_input import run_failing

from gtsrb.common import contract
from testkit.evaluate import TEST_RECORDS, make_images, write_split
from testkit.prepare import corrupt_record


def test_split_packed_larger_than_the_model_input(tmp_path: Path, model_dir: Path, capsys, sagemaker_base: Path) -> None:
    large = tmp_path / "test-24px"
    write_split(large, *make_images(TEST_RECORDS, seed=7, side=24))  # 24 px, the model wants 18 (16 + 1/8)
    err = run_failing(model_dir, large, tmp_path / "out", capsys, sagemaker_base)
    assert "holds 24px images, but image_size=16 needs 18px ones" in err


def test_truncated_idx(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    broken = Path(shutil.copytree(test_split, tmp_path / "test"))
    lines = (broken / "test.idx").read_text().splitlines()
    (broken / "test.idx").write_text("\n".join(lines[:-5]) + "\n")
    err = run_failing(model_dir, broken, tmp_path / "out", capsys, sagemaker_base)
    assert "test.idx does not index" in err and "stale or truncated" in err


def test_stale_idx(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    broken = Path(shutil.copytree(test_split, tmp_path / "test"))
    other = write_split(tmp_path / "other", *make_images(TEST_RECORDS, seed=8))  # same count, other bytes
    shutil.copy(other.idx, broken / "test.idx")
    err = run_failing(model_dir, broken, tmp_path / "out", capsys, sagemaker_base)
    assert "test.idx" in err and "stale or truncated" in err


def test_count_disagrees_with_the_manifest(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    split = Path(shutil.copytree(test_split, tmp_path / "prepared" / "test"))
    (tmp_path / "prepared" / "manifest").mkdir()
    manifest = {"counts": {"test": {"total": TEST_RECORDS + 3}}}
    (tmp_path / "prepared" / "manifest" / contract.MANIFEST_FILE).write_text(json.dumps(manifest))
    err = run_failing(model_dir, split, tmp_path / "out", capsys, sagemaker_base)
    assert f"holds {TEST_RECORDS} records but" in err and f"says {TEST_RECORDS + 3}" in err


def test_fractional_label_is_not_class_0(tmp_path: Path, model_dir: Path, capsys, sagemaker_base: Path) -> None:
    images, labels = make_images(TEST_RECORDS, seed=7)
    labels = labels.astype(np.float64)
    labels[4] = -0.5
    write_split(tmp_path / "test", images, labels)
    err = run_failing(model_dir, tmp_path / "test", tmp_path / "out", capsys, sagemaker_base)
    assert "record 4 has label -0.5, not a class id 0..42" in err


@pytest.mark.parametrize("content", ["[96]", '"96"', "null", '{"image_size": [1]}'])
def test_preprocessing_json_of_the_wrong_type(
    tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path, content: str
) -> None:
    broken = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (broken / contract.PREPROCESSING_FILE).write_text(content)
    err = run_failing(broken, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "the model files are corrupt" in err


def test_an_undecodable_image_inside_the_test_rec(tmp_path: Path, model_dir: Path, capsys, sagemaker_base: Path) -> None:
    files = write_split(tmp_path / "test", *make_images(TEST_RECORDS, seed=7))
    corrupt_record(files, 9)
    err = run_failing(model_dir, tmp_path / "test", tmp_path / "out", capsys, sagemaker_base)
    assert "test.rec record 9 is not a decodable image" in err
