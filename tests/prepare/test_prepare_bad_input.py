"""Every bad input of the prepare step: a clear error naming the file, or a listed skip.

A failed run must leave no .rec behind (the known complaint: an empty .rec reported as success).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gtsrb.common.contract import SPLITS
from gtsrb.common.failure import StepError
from gtsrb.prepare.step import PrepareOptions, prepare
from testkit.prepare import rewrite_csv_row, write_kaggle, write_official

OPTIONS = PrepareOptions(image_size=16, workers=2)
TRAIN = Path("GTSRB/Final_Training/Images")


@pytest.fixture
def official(tmp_path) -> Path:
    return write_official(tmp_path / "data", tracks=2, frames=3, test_per_class=2)


def no_records_left(out: Path) -> bool:
    return not any(out.glob("*/*.rec")) and not any(out.glob("*/*.partial")) and not (out / "manifest").exists()


def fails(data: Path, out: Path, *fragments: str, options: PrepareOptions = OPTIONS) -> str:
    with pytest.raises(StepError) as err:
        prepare(data, out, options)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert no_records_left(out)
    return message


def test_missing_folder(tmp_path):
    fails(tmp_path / "nope", tmp_path / "out", "nope", "no such data folder")


def test_unknown_layout_names_what_was_expected(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "GTSRB_Final_Training_Images.zip").write_bytes(b"PK")
    fails(tmp_path / "data", tmp_path / "out", "unknown layout", "Final_Training", "Train.csv", "unzip")


def test_csv_missing_columns(official, tmp_path):
    csv = official / TRAIN / "00007" / "GT-00007.csv"
    csv.write_text(csv.read_text().replace("Roi.X2", "RoiX2"))
    fails(official, tmp_path / "out", "GT-00007.csv", "missing column", "Roi.X2")


def test_label_outside_the_43_classes(official, tmp_path):
    rewrite_csv_row(official / TRAIN / "00003" / "GT-00003.csv", "00001_00002.ppm", "ClassId", "43")
    fails(official, tmp_path / "out", "GT-00003.csv", "line", "ClassId 43", "0-42")


def test_not_a_number_names_file_and_line(official, tmp_path):
    rewrite_csv_row(official / TRAIN / "00003" / "GT-00003.csv", "00000_00001.ppm", "Width", "wide")
    fails(official, tmp_path / "out", "GT-00003.csv, line 3", "number")


def test_class_without_images(official, tmp_path):
    csv = official / TRAIN / "00042" / "GT-00042.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    fails(official, tmp_path / "out", "class 42", "End of no passing by vehicles over 3.5 metric tons")


def test_missing_test_labels_explain_the_separate_archive(official, tmp_path):
    (official / "GTSRB/Final_Test/Images/GT-final_test.csv").unlink()
    fails(official, tmp_path / "out", "GT-final_test.csv", "GTSRB_Final_Test_GT.zip")


def bad_files(official: Path) -> dict[str, str]:
    """Plant a zero-byte, a truncated and a non-image file; return name -> expected reason."""
    folder = official / TRAIN / "00005"
    (folder / "00000_00000.ppm").write_bytes(b"")
    truncated = (folder / "00000_00001.ppm").read_bytes()
    (folder / "00000_00001.ppm").write_bytes(truncated[: len(truncated) // 3])
    (folder / "00001_00000.ppm").write_text("this is not an image\n")
    return {
        "Final_Training/Images/00005/00000_00000.ppm": "empty file",
        "Final_Training/Images/00005/00000_00001.ppm": "not a decodable image",
        "Final_Training/Images/00005/00001_00000.ppm": "not a decodable image",
    }


def test_unreadable_images_are_skipped_and_listed(official, tmp_path):
    expected = bad_files(official)
    manifest = prepare(official, tmp_path / "out", PrepareOptions(image_size=16, max_skipped_fraction=0.05))
    listed = {entry["file"]: entry["reason"] for entry in manifest["skipped"]}
    assert set(listed) == set(expected)
    for name, reason in expected.items():
        assert reason in listed[name]
    total = sum(manifest["counts"][s]["total"] for s in SPLITS)
    assert total == 43 * 2 * 3 + 43 * 2 - 3


def test_too_many_skipped_fails_and_leaves_no_records(official, tmp_path):
    bad_files(official)
    fails(official, tmp_path / "out", "3 of", "could not be read", "00005", "--max-skipped-fraction",
          options=PrepareOptions(image_size=16, max_skipped_fraction=0.001))


def test_a_class_whose_images_are_all_unreadable_fails(official, tmp_path):
    for path in (official / "GTSRB/Final_Test/Images").glob("*.ppm"):
        if int(path.stem) % 43 == 11:
            path.write_bytes(b"")
    fails(official, tmp_path / "out", "test split", "class 11", "was unreadable", "empty file",
          options=PrepareOptions(image_size=16, max_skipped_fraction=1.0))


def test_grayscale_rgba_and_16_bit_images_are_converted(tmp_path):
    data = write_kaggle(tmp_path / "data", tracks=2, frames=2, test_per_class=1)
    colour = cv2.imread(str(data / "Train/1/00001_00000_00000.png"))
    cv2.imwrite(str(data / "Train/1/00001_00000_00000.png"), cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(data / "Train/2/00002_00000_00000.png"), cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(data / "Train/3/00003_00000_00000.png"), colour.astype(np.uint16) * 257)
    manifest = prepare(data, tmp_path / "out", OPTIONS)
    assert manifest["skipped"] == []
    assert manifest["converted"] == {"grayscale": 1, "rgba": 1, "16-bit": 1}


def test_cli_exit_code_and_processing_message_file(official, tmp_path):
    csv = official / TRAIN / "00007" / "GT-00007.csv"
    csv.write_text(csv.read_text().replace("ClassId", "Label"))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    run = subprocess.run(
        [sys.executable, "-m", "gtsrb.prepare", "--input", str(official), "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env,
    )
    assert run.returncode == 1
    assert "GT-00007.csv" in run.stderr and "ClassId" in run.stderr
    assert "Traceback" not in run.stderr
    message = (tmp_path / "ml" / "output" / "message").read_text()
    assert message.startswith(f"{csv}: missing column(s) ClassId")
    assert no_records_left(tmp_path / "out")


def test_option_out_of_range_names_the_option(official, tmp_path):
    fails(official, tmp_path / "out", "validation_fraction", options=PrepareOptions(validation_fraction=0.9))
