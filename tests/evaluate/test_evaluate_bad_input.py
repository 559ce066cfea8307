"""Every bad input: one clear sentence, exit code 1, the processing failure message, and no report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mxnet as mx
import pytest

from gtsrb.common import contract
from gtsrb.common.preprocessing import stored_size
from gtsrb.evaluate.cli import main
from testkit.evaluate import TEST_RECORDS, make_images, save_tiny_model, train_tiny_net, write_split


def run_failing(model: Path, test: Path, out: Path, capsys: pytest.CaptureFixture, base: Path, *extra: str) -> str:
    """Run the CLI, assert it failed cleanly without a report, return its one-sentence error."""
    code = main(["--model", str(model), "--test", str(test), "--output", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert not (out / contract.EVALUATION_FILE).exists()
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    message = (base / "output" / "message").read_text()
    assert "Unexpected error" not in message, message  # bad input is reported as such, not as a bug
    sentence = [line for line in err.splitlines() if line.startswith("ERROR: ")][-1]
    assert sentence[len("ERROR: ") :] in message
    return sentence


@pytest.fixture(scope="module")
def five_class_net() -> mx.gluon.HybridBlock:
    """A net with 5 outputs: too few for the 43 class names save_model writes, or for the data."""
    return train_tiny_net(5, steps=1)


def test_missing_model(tmp_path: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    err = run_failing(tmp_path / "nope", test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "nope: no such model directory or model.tar.gz" in err


def test_corrupt_archive(tmp_path: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / contract.MODEL_ARCHIVE).write_bytes(b"\x1f\x8b this is not gzip" * 10)
    err = run_failing(tmp_path / "model", test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "not a readable model.tar.gz" in err


def test_incomplete_model(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    broken = shutil.copytree(model_dir, tmp_path / "model")
    (broken / contract.PARAMS_FILE).unlink()
    err = run_failing(broken, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert f"missing {contract.PARAMS_FILE}" in err


def test_corrupt_weights(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    broken = shutil.copytree(model_dir, tmp_path / "model")
    (broken / contract.PARAMS_FILE).write_bytes(b"garbage")
    err = run_failing(broken, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "the model files are corrupt" in err


def test_outputs_do_not_match_class_names(tmp_path: Path, five_class_net, test_split: Path, capsys, sagemaker_base: Path) -> None:
    model = save_tiny_model(tmp_path / "model", five_class_net)
    err = run_failing(model, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "the network has 5 outputs but the model lists 43 class names" in err


def test_labels_outside_the_model_classes(tmp_path: Path, five_class_net, test_split: Path, capsys, sagemaker_base: Path) -> None:
    model = save_tiny_model(tmp_path / "model", five_class_net)
    (model / contract.CLASSES_FILE).write_text(json.dumps(["a", "b", "c", "d", "e"]))
    err = run_failing(model, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "classes.json lists 43 classes that are not the 5 classes of" in err  # prepare's names beside the split
    by_hand = Path(shutil.copytree(test_split, tmp_path / "by-hand"))
    (by_hand / contract.CLASSES_FILE).unlink()  # a split packed by hand: its labels are checked instead
    err = run_failing(model, by_hand, tmp_path / "out", capsys, sagemaker_base)
    assert "not a class id 0..4 of its 5 classes" in err


def test_images_smaller_than_the_input(tmp_path: Path, trained_net, test_split: Path, capsys, sagemaker_base: Path) -> None:
    model = save_tiny_model(tmp_path / "model", trained_net, image_size=32)
    err = run_failing(model, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "holds 18px images, but image_size=32 needs 36px ones" in err


def test_network_built_for_another_input_size(tmp_path: Path, trained_net, test_split: Path, capsys, sagemaker_base: Path) -> None:
    model = save_tiny_model(tmp_path / "model", trained_net, image_size=12)  # net's Dense expects 16 px
    test_12px = tmp_path / "test-12px"
    write_split(test_12px, *make_images(TEST_RECORDS, seed=7, side=stored_size(12)))  # packed for 12 px
    err = run_failing(model, test_12px, tmp_path / "out", capsys, sagemaker_base)
    assert "cannot predict" in err and "at 12px" in err and "do not fit together" in err


def test_empty_test_set(tmp_path: Path, model_dir: Path, capsys, sagemaker_base: Path) -> None:
    files = contract.record_files(tmp_path / "test", "test")
    files.rec.parent.mkdir()
    files.rec.write_bytes(b"")
    files.idx.write_text("")
    err = run_failing(model_dir, tmp_path / "test", tmp_path / "out", capsys, sagemaker_base)
    assert "test.rec is missing or empty" in err


def test_test_set_without_index(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    test = shutil.copytree(test_split, tmp_path / "test")
    contract.record_files(test, "test").idx.unlink()
    err = run_failing(model_dir, test, tmp_path / "out", capsys, sagemaker_base)
    assert "test.idx is missing" in err


@pytest.mark.parametrize("layout", ["missing", "no-rec"])
def test_missing_test_set(tmp_path: Path, model_dir: Path, capsys, sagemaker_base: Path, layout: str) -> None:
    test = tmp_path / "test"
    if layout == "no-rec":
        test.mkdir()
    err = run_failing(model_dir, test, tmp_path / "out", capsys, sagemaker_base)
    assert ("no such test folder" if layout == "missing" else "holds no test.rec") in err


def test_bad_batch_size(tmp_path: Path, model_dir: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    err = run_failing(model_dir, test_split, tmp_path / "out", capsys, sagemaker_base, "--batch-size", "0")
    assert "--batch-size must be at least 1" in err


def test_weights_that_produce_nan(tmp_path: Path, test_split: Path, capsys, sagemaker_base: Path) -> None:
    net = train_tiny_net(43, steps=1)
    weight = net[-1].weight
    weight.set_data(weight.data() * float("nan"))  # what a diverged training run leaves behind
    model = save_tiny_model(tmp_path / "model", net)
    err = run_failing(model, test_split, tmp_path / "out", capsys, sagemaker_base)
    assert "outputs NaN or infinite scores" in err
