"""Your own data: the folder-per-class layout (train/<class>/..., optional test/, optional classes.json),
and a test split that lacks a class (allow_missing_test_classes)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.common.classes import read_class_names
from gtsrb.common.failure import StepError
from gtsrb.prepare.layouts import FOLDERS, detect
from gtsrb.prepare.step import PrepareOptions, prepare
from testkit.prepare import write_folders, write_official

OPTIONS = PrepareOptions(image_size=16, workers=1)
NAMES = ["circle", "square", "triangle"]


def lst_labels(out: Path, split: str) -> Counter:
    """Records per class id in a split's .lst."""
    lines = contract.record_files(out / split, split).lst.read_text().splitlines()
    return Counter(int(float(line.split("\t")[1])) for line in lines)


def test_folders_with_a_test_folder_keep_it_and_name_the_classes_everywhere(tmp_path: Path) -> None:
    data = write_folders(tmp_path / "data", NAMES, per_class=10, test_per_class=4, ext=".jpg")
    assert detect(data) == (FOLDERS, data)
    manifest = prepare(data, tmp_path / "out", OPTIONS)
    assert manifest["layout"] == FOLDERS and manifest["class_names"] == NAMES
    assert manifest["counts"]["test"]["per_class"] == [4, 4, 4]  # the user's test folder, untouched
    assert [a + b for a, b in zip(manifest["counts"]["train"]["per_class"], manifest["counts"]["validation"]["per_class"],
                                  strict=True)] == [10, 10, 10]
    for split in contract.SPLITS:  # the class names travel with every split (the train channel reads them)
        assert read_class_names(tmp_path / "out" / split) == NAMES
    assert manifest["image_size"]["upscaled"] == 0 and manifest["missing_test_classes"] == []


def test_without_a_test_folder_a_seeded_stratified_test_split_is_held_out(tmp_path: Path) -> None:
    data = write_folders(tmp_path / "data", NAMES, per_class=20)
    first = prepare(data, tmp_path / "a", PrepareOptions(image_size=16, workers=1, test_fraction=0.25))
    assert first["counts"]["test"]["per_class"] == [5, 5, 5]  # 25% of every class
    assert sum(first["counts"][s]["total"] for s in contract.SPLITS) == 60  # no image lost or doubled
    again = prepare(data, tmp_path / "b", PrepareOptions(image_size=16, workers=1, test_fraction=0.25))
    test_lst = contract.record_files(tmp_path / "a" / "test", "test").lst.read_text()
    assert test_lst == contract.record_files(tmp_path / "b" / "test", "test").lst.read_text()  # seeded
    assert again["input_sha256"] == first["input_sha256"]
    other = prepare(data, tmp_path / "c", PrepareOptions(image_size=16, workers=1, test_fraction=0.25, seed=1))
    assert contract.record_files(tmp_path / "c" / "test", "test").lst.read_text() != test_lst
    assert other["counts"]["test"]["per_class"] == [5, 5, 5]


def test_classes_json_sets_the_class_order(tmp_path: Path) -> None:
    data = write_folders(tmp_path / "data", NAMES, per_class=6, test_per_class=2)
    (data / contract.CLASSES_FILE).write_text(json.dumps(["triangle", "circle", "square"]))
    manifest = prepare(data, tmp_path / "out", OPTIONS)
    assert manifest["class_names"] == ["triangle", "circle", "square"]
    lines = contract.record_files(tmp_path / "out" / "test", "test").lst.read_text().splitlines()
    assert {line.split("\t")[2].split("/")[1]: int(float(line.split("\t")[1])) for line in lines} == {
        "triangle": 0, "circle": 1, "square": 2}


@pytest.mark.parametrize(
    ("plant", "fragments"),
    [
        (lambda d: (d / "test" / "hexagon").mkdir(), ("test/hexagon", "no training class is called 'hexagon'")),
        (lambda d: (d / "train" / "square" / "notes.txt").write_text("x"), ("notes.txt", "not an image file")),
        (lambda d: (d / "train" / "readme.md").write_text("x"), ("readme.md", "one folder per class")),
        (lambda d: (d / contract.CLASSES_FILE).write_text('["circle", "square"]'), ("classes.json", "'triangle'")),
        (lambda d: (d / contract.CLASSES_FILE).write_text("{"), ("classes.json", "not readable JSON")),
        (lambda d: (d / contract.CLASSES_FILE).write_text('["a", "a", "b"]'), ("classes.json", "more than once")),
    ],
)
def test_bad_folder_data_names_the_file_and_the_problem(tmp_path: Path, plant, fragments: tuple[str, ...]) -> None:
    data = write_folders(tmp_path / "data", NAMES, per_class=6, test_per_class=2)
    plant(data)
    with pytest.raises(StepError) as err:
        prepare(data, tmp_path / "out", OPTIONS)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    assert not any((tmp_path / "out").glob("*/*.rec"))


def test_one_class_is_not_a_classifier(tmp_path: Path) -> None:
    data = write_folders(tmp_path / "data", ["only"], per_class=6)
    with pytest.raises(StepError, match="at least two classes"):
        prepare(data, tmp_path / "out", OPTIONS)


def test_a_class_missing_from_the_test_split_says_what_and_why(tmp_path: Path) -> None:
    data = write_folders(tmp_path / "data", NAMES, per_class=6, test_per_class=2)
    for image in (data / "test" / "square").iterdir():
        image.unlink()
    (data / "test" / "square").rmdir()
    with pytest.raises(StepError) as err:
        prepare(data, tmp_path / "out", OPTIONS)
    message = str(err.value)
    for fragment in ("no test image of class 1 (square)", "would not measure", "allow_missing_test_classes=true"):
        assert fragment in message, message
    assert not (tmp_path / "out" / "manifest").exists()
    manifest = prepare(data, tmp_path / "out", PrepareOptions(image_size=16, workers=1, allow_missing_test_classes=True))
    assert manifest["missing_test_classes"] == [1] and manifest["counts"]["test"]["per_class"] == [2, 0, 2]


def test_a_gtsrb_class_absent_from_the_test_csv_is_named_and_can_be_allowed(tmp_path: Path) -> None:
    data = write_official(tmp_path / "data", tracks=2, frames=2, test_per_class=1)
    csv = data / "GTSRB/Final_Test/Images/GT-final_test.csv"
    csv.write_text("\n".join(line for line in csv.read_text().splitlines() if not line.endswith(";27")) + "\n")
    with pytest.raises(StepError, match=r"lists no test image of class 27 \(Pedestrians\)"):
        prepare(data, tmp_path / "out", OPTIONS)
    manifest = prepare(data, tmp_path / "out", PrepareOptions(image_size=16, workers=1, allow_missing_test_classes=True))
    assert manifest["missing_test_classes"] == [27]
