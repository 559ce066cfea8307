"""The weight average (ema_decay) and the in-network per-image standardisation (input_norm)."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.failure import StepError
from gtsrb.train.ema import WeightAverage, decay_at
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.model import build_network, create_network, initialise, standardise_images


def test_standardised_images_have_mean_0_and_std_1() -> None:
    x = mx.nd.array(np.random.default_rng(0).normal(3.0, 0.2, (4, 3, 8, 8)))
    y = standardise_images(mx.nd, x).asnumpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2, 3)), 1, atol=2e-3)  # the std floor: 0.01 against 0.2
    flat = standardise_images(mx.nd, mx.nd.full((1, 3, 8, 8), -1.7)).asnumpy()
    assert np.isfinite(flat).all() and np.abs(flat).max() < 1e-3  # a flat image stays flat, no NaN


def test_a_dark_copy_of_an_image_gets_the_same_scores_with_input_norm() -> None:
    """The point of input_norm: brightness and contrast (a per-image affine map) no longer matter."""
    rng = np.random.default_rng(1)
    image = rng.normal(0.0, 1.0, (2, 3, 32, 32)).astype(np.float32)
    dark = 0.15 * image - 1.8  # 15% of the contrast, much darker, in normalised units
    net = build_network("gtsrb_cnn", GTSRB_NUM_CLASSES, 32, [mx.cpu()], None, 1.0, input_norm="image")  # hybridized, as trained
    np.testing.assert_allclose(net(mx.nd.array(dark)).asnumpy(), net(mx.nd.array(image)).asnumpy(), rtol=1e-2, atol=3e-3)
    plain = create_network("gtsrb_cnn", GTSRB_NUM_CLASSES)
    initialise(plain, 32, [mx.cpu()])
    assert not np.allclose(plain(mx.nd.array(dark)).asnumpy(), plain(mx.nd.array(image)).asnumpy(), atol=1e-2)


def test_input_norm_only_for_gtsrb_cnn() -> None:
    assert Hyperparameters.from_mapping({"preset": "cpu", "input_norm": "image"}).input_norm == "image"
    with pytest.raises(StepError, match="hyperparameter input_norm='image' is invalid"):
        Hyperparameters.from_mapping({"input_norm": "image"})  # the GPU recipe's resnet50_v1d
    with pytest.raises(StepError, match="hyperparameter input_norm='clahe' is invalid"):
        Hyperparameters.from_mapping({"preset": "cpu", "input_norm": "clahe"})
    with pytest.raises(StepError, match="hyperparameter ema_decay=1.0 is invalid"):
        Hyperparameters.from_mapping({"ema_decay": "1"})


def test_the_average_follows_the_formula_and_round_trips(tmp_path: Path) -> None:
    net = create_network("gtsrb_cnn", GTSRB_NUM_CLASSES)
    initialise(net, 32, [mx.cpu()])
    params = net._collect_params_with_prefix()
    start = {k: p.data().asnumpy().copy() for k, p in params.items()}
    ema = WeightAverage(net, 0.9)
    for p in params.values():
        p.set_data(p.data() + 1.0)
    ema.update(step=100)  # decay 0.9 (past the warm-up)
    assert decay_at(100, 0.9) == 0.9 and decay_at(0, 0.9) == pytest.approx(0.1)
    for k in params:
        np.testing.assert_allclose(ema.average[k].asnumpy(), start[k] + 0.1, rtol=1e-5, atol=1e-6, err_msg=k)
    with ema.swapped_in():  # the net holds the average inside, its own weights after
        np.testing.assert_allclose(params["output.weight"].data().asnumpy(), start["output.weight"] + 0.1, atol=1e-6)
    np.testing.assert_allclose(params["output.weight"].data().asnumpy(), start["output.weight"] + 1.0, atol=1e-6)
    ema.save(tmp_path / "ema.params")
    other = WeightAverage(net, 0.9)
    other.load(tmp_path / "ema.params")
    np.testing.assert_array_equal(other.average["output.weight"].asnumpy(), ema.average["output.weight"].asnumpy())
    mx.nd.save(str(tmp_path / "bad.params"), {"x": mx.nd.zeros(3)})
    with pytest.raises(StepError, match="bad.params does not hold this network's weight average"):
        other.load(tmp_path / "bad.params")


@pytest.mark.slow
def test_a_run_with_ema_checkpoints_and_exports_the_average(channels: dict[str, Path], tmp_path: Path) -> None:
    """The real train step: every checkpoint holds ema.params, and the exported model is the average
    (with input_norm in its graph); a second run resumes from the checkpoint with the average."""
    from gtsrb.common import contract
    from gtsrb.common.sagemaker_job import hyperparameters_to_args
    from gtsrb.train.ema import EMA_FILE
    from testkit.train import FAST_HPS, run_module

    hps = {**FAST_HPS, "epochs": "2", "fit_on_validation": "False", "ema_decay": "0.9", "input_norm": "image"}
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(tmp_path / "model"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    output, _ = run_module(argv, tmp_path).communicate(timeout=600)
    assert "event=saved" in output, output[-3000:]
    last = sorted((tmp_path / "ckpt").glob("step-*"))[-1]
    average, raw = mx.nd.load(str(last / EMA_FILE)), mx.nd.load(str(last / "net.params"))
    exported = mx.nd.load(str(tmp_path / "model" / contract.PARAMS_FILE))
    weight = next(k for k in exported if k.endswith("dense0_weight"))
    np.testing.assert_array_equal(exported[weight].asnumpy(), average["output.weight"].asnumpy())
    assert not np.array_equal(average["output.weight"].asnumpy(), raw["output.weight"].asnumpy())
    assert "broadcast_div" in (tmp_path / "model" / contract.SYMBOL_FILE).read_text()  # input_norm is in the graph
    again, _ = run_module(argv, tmp_path).communicate(timeout=600)
    assert "event=resume" in again and "event=saved" in again, again[-3000:]
