"""The `pretrained` channel: a locally saved weights file of the 1000-class net seeds the backbone."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model

from gtsrb.common.classes import GTSRB_NUM_CLASSES
from gtsrb.common.failure import run_step
from gtsrb.common.sagemaker_job import hyperparameters_to_args
from gtsrb.train.model import initialise
from gtsrb.train.step import train
from testkit.train import FAST_HPS

MODEL = FAST_HPS.get("model", "cifar_resnet20_v2")


def test_pretrained_channel_keeps_backbone_weights(base_dir: Path, channels: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A 1000-class network with its own random weights, saved as a `pretrained` channel file.
    mx.random.seed(123)
    source = get_model(MODEL, classes=1000)
    initialise(source, 32, [mx.cpu()])
    channel = tmp_path / "pretrained"
    channel.mkdir()
    source.save_parameters(str(channel / "backbone-1000.params"))
    saved = {k: v.asnumpy() for k, v in mx.nd.load(str(channel / "backbone-1000.params")).items()}

    # One epoch at a negligible rate: the trained weights must still be the file's.
    monkeypatch.setenv("SM_CHANNEL_PRETRAINED", str(channel))
    hps = {**FAST_HPS, "model": MODEL, "epochs": "1", "lr": "1e-12", "warmup_epochs": "0"}
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(base_dir / "model")]
    assert run_step(lambda: train(argv), "failure") == 0
    trained = {k: v.asnumpy() for k, v in mx.nd.load(str(next((base_dir / "checkpoints").glob("step-0001-*")) / "net.params")).items()}

    weights = [k for k in trained if k.endswith(("weight", "gamma", "beta")) and not k.startswith("output.")]
    assert len(weights) > 30
    for key in weights:
        np.testing.assert_allclose(trained[key], saved[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert trained["output.weight"].shape[0] == GTSRB_NUM_CLASSES != saved["output.weight"].shape[0]


@pytest.mark.slow
def test_imagenet_weights_baked_into_mxnet_home_are_used(base_dir: Path, channels: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # What the image build leaves in $MXNET_HOME/models (a locally made stand-in: no download here).
    from gluoncv.model_zoo.model_store import short_hash

    name = "resnet18_v1b"
    source = get_model(name, classes=1000)
    initialise(source, 32, [mx.cpu()])
    (tmp_path / "home" / "models").mkdir(parents=True)
    file = tmp_path / "home" / "models" / f"{name}-{short_hash(name)}.params"
    source.save_parameters(str(file))
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "home"))

    hps = {**FAST_HPS, "model": name, "pretrained": "imagenet", "epochs": "1", "lr": "1e-12", "warmup_epochs": "0"}
    argv = [*hyperparameters_to_args(hps), "--train", str(channels["train"]), "--validation", str(channels["validation"]),
            "--model-dir", str(base_dir / "model")]
    assert run_step(lambda: train(argv), "failure") == 0
    trained = mx.nd.load(str(next((base_dir / "checkpoints").glob("step-0001-*")) / "net.params"))
    np.testing.assert_allclose(trained["conv1.weight"].asnumpy(), source.conv1.weight.data().asnumpy(), rtol=1e-5, atol=1e-7)
    assert trained["fc.weight"].shape == (GTSRB_NUM_CLASSES, 512)
    assert not list((tmp_path / "home" / "models").glob("*.lock"))  # no gluoncv download machinery
