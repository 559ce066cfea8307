"""Unit tests of the train step's parts: hyperparameters, GPU check, heads, weights, schedule."""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import get_model

from gtsrb.common.classes import GTSRB_CLASS_NAMES, GTSRB_NUM_CLASSES
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import DEFAULT_IMAGE_SIZE
from gtsrb.train import devices, pretrained
from gtsrb.train.hyperparameters import CPU_PRESET, SHORT_RUN_WARMUP_SHARE, Hyperparameters
from gtsrb.train.model import classifier, create_network, initialise, load_backbone, set_multipliers
from gtsrb.train.optimizer import learning_rate
from testkit.train import IMAGE_SIZE


# --- hyperparameters ---------------------------------------------------------------------------
def test_defaults_are_the_gpu_recipe() -> None:
    hp = Hyperparameters()
    assert (hp.model, hp.pretrained, hp.image_size, hp.amp) == ("resnet50_v1d", "imagenet", DEFAULT_IMAGE_SIZE, True)
    assert hp.model == pretrained.DEFAULT_BACKBONE and hp.model in pretrained.BAKED_BACKBONES
    assert Hyperparameters.from_mapping({}) == hp


def test_strings_are_converted_as_sagemaker_sends_them() -> None:
    hp = Hyperparameters.from_mapping({"epochs": "7", "lr": "0.01", "amp": "False", "model": "resnet18_v1b"})
    assert (hp.epochs, hp.lr, hp.amp, hp.model) == (7, 0.01, False, "resnet18_v1b")
    assert Hyperparameters.from_mapping({"amp": "True"}).amp is True


def test_cpu_preset_and_explicit_values_win() -> None:
    cpu = Hyperparameters.for_preset("cpu")
    assert cpu.model == CPU_PRESET["model"] and cpu.image_size == 40 and cpu.pretrained == "none"
    hp = Hyperparameters.from_mapping({"preset": "cpu", "epochs": "2"})
    assert hp.epochs == 2 and hp.model == cpu.model and hp.preset == "cpu"
    assert hp.to_dict()["preset"] == "cpu"


@pytest.mark.parametrize("raw", [{"lr": "-1"}, {"warmup_epochs": "15"}, {"pretrained": "coco"}, {"min_scale": "2"}, {"tta": "flip"}])
def test_invalid_values_name_the_key(raw: dict[str, str]) -> None:
    with pytest.raises(StepError, match=f"hyperparameter {next(iter(raw))}="):
        Hyperparameters.from_mapping(raw)


def test_a_run_shorter_than_the_warmup_warms_up_less_unless_told() -> None:
    one = Hyperparameters.from_mapping({"preset": "cpu", "epochs": "1"})  # HP='epochs=1': the preset warms up 1 epoch
    assert (one.epochs, one.warmup_epochs) == (1, 1 * SHORT_RUN_WARMUP_SHARE)
    assert Hyperparameters.from_mapping({"epochs": "3"}).warmup_epochs == Hyperparameters.warmup_epochs  # long enough: kept
    with pytest.raises(StepError, match=r"warmup_epochs=1\.0 is invalid: it must be in \[0, epochs=1\), e\.g\. warmup_epochs=0"):
        Hyperparameters.from_mapping({"epochs": "1", "warmup_epochs": "1"})  # asked for: an error that says what works


# --- GPU capability ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("capability", "ok"),
    [((7, 0), True), ((7, 5), True), ((8, 0), True), ((8, 6), True), ((8, 9), True), ((6, 1), True),
     ((5, 2), True), ((3, 7), False), ((9, 0), False), ((10, 0), False), ((12, 0), False)],
)
def test_supported_architectures(capability: tuple[int, int], ok: bool) -> None:
    # V100 7.0, T4 7.5, A100 8.0, A10G 8.6, L4/L40S 8.9 run; K80 3.7, H100 9.0, Blackwell do not.
    assert devices.is_supported(capability) is ok


def test_cpu_contexts_without_gpus() -> None:
    assert devices.training_contexts(0) == [mx.cpu()]


# --- networks and heads --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kind", "in_size"),
    [("resnet18_v1b", mx.gluon.nn.Dense, 512), ("cifar_resnet20_v2", mx.gluon.nn.Dense, 64),
     ("mobilenetv3_small", mx.gluon.nn.Conv2D, 1280), ("gtsrb_cnn", mx.gluon.nn.Dense, 128)],
)
def test_classifier_of_each_family(name: str, kind: type, in_size: int) -> None:
    net = create_network(name, GTSRB_NUM_CLASSES)
    head = classifier(net)
    assert isinstance(head, kind)
    initialise(net, 32, [mx.cpu()])
    assert head.weight.shape[:2] == (GTSRB_NUM_CLASSES, in_size)


@pytest.mark.parametrize("image_size", [32, 40, 48])
def test_gtsrb_cnn_takes_every_input_size(image_size: int) -> None:
    # Global average pooling: one definition for any image_size the recipe chooses.
    net = create_network("gtsrb_cnn", GTSRB_NUM_CLASSES)
    initialise(net, image_size, [mx.cpu()])
    assert net(mx.nd.zeros((2, 3, image_size, image_size))).shape == (2, GTSRB_NUM_CLASSES)
    assert 0.2e6 < sum(p.data().size for p in net.collect_params().values()) < 0.3e6


def test_multipliers_spare_bias_and_batchnorm() -> None:
    net = create_network("cifar_resnet20_v2", GTSRB_NUM_CLASSES)
    initialise(net, 32, [mx.cpu()])
    set_multipliers(net, 10.0)
    params = net._collect_params_with_prefix()
    assert all(p.wd_mult == 0 for n, p in params.items() if n.endswith(("bias", "gamma", "beta")))
    assert any(p.wd_mult == 1 for n, p in params.items() if n.endswith("weight"))
    assert classifier(net).weight.lr_mult == 10.0 and params["features.1.weight"].lr_mult == 1.0


@pytest.mark.parametrize("name", ["cifar_resnet20_v2", "mobilenetv3_small"])
def test_head_swap_keeps_the_backbone_weights(name: str, tmp_path: Path) -> None:
    # A "pretrained" 1000-class net saved locally, as a zoo or `pretrained` channel file would be.
    source = get_model(name, classes=1000)
    initialise(source, 32, [mx.cpu()])
    file = tmp_path / f"{name}-1000.params"
    source.save_parameters(str(file))
    saved = {k: v.asnumpy() for k, v in mx.nd.load(str(file)).items()}

    net = create_network(name, GTSRB_NUM_CLASSES)
    initialise(net, 32, [mx.cpu()])
    loaded = load_backbone(net, file)
    head = {id(p) for p in classifier(net).collect_params().values()}
    params = net._collect_params_with_prefix()
    assert loaded == len(params) - len(head)
    for key, param in params.items():
        if id(param) in head:
            assert param.shape[0] == GTSRB_NUM_CLASSES and param.shape != saved[key].shape
        else:
            np.testing.assert_array_equal(param.data().asnumpy(), saved[key], err_msg=key)


# --- pretrained weights cache ---------------------------------------------------------------------
def test_imagenet_weights_read_from_mxnet_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXNET_HOME", str(tmp_path))
    with pytest.raises(StepError, match="resnet50_v1d-117a384e.params is missing"):
        pretrained.imagenet_params_path("resnet50_v1d")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet50_v1d-117a384e.params").write_bytes(b"x")
    assert pretrained.imagenet_params_path("resnet50_v1d") == tmp_path / "models" / "resnet50_v1d-117a384e.params"
    assert not list((tmp_path / "models").glob("*.lock"))  # reading never takes gluoncv's download lock


# --- schedule ------------------------------------------------------------------------------------
def test_warmup_then_cosine_to_zero() -> None:
    rates = [learning_rate(s, 100, 10, 0.1) for s in range(100)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)
    assert rates[10] == pytest.approx(0.1) and rates[55] == pytest.approx(0.05)
    assert all(a >= b for a, b in pairwise(rates[10:])) and rates[-1] < 1e-4
    assert not any(math.isnan(r) for r in rates)


# --- export ----------------------------------------------------------------------------------------
def test_export_in_a_fresh_process_gives_the_same_predictions(tmp_path: Path) -> None:
    # The AMP path exports from a fresh float32 process; it must be the very network trained.
    from gtsrb.common.model_io import load_model
    from gtsrb.train.export import export_in_fresh_process

    net = create_network("cifar_resnet20_v2", GTSRB_NUM_CLASSES)
    initialise(net, IMAGE_SIZE, [mx.cpu()])
    net.save_parameters(str(tmp_path / "net.params"))
    hps = {**Hyperparameters.for_preset("cpu").to_dict(), "image_size": IMAGE_SIZE, "model": "cifar_resnet20_v2", "tta": "shift"}
    export_in_fresh_process(tmp_path / "net.params", tmp_path / "model", hps, [{"epoch": 1}], list(GTSRB_CLASS_NAMES))
    model = load_model(tmp_path / "model", mx.cpu())
    x = mx.nd.random.uniform(shape=(2, 3, IMAGE_SIZE, IMAGE_SIZE))
    with mx.autograd.predict_mode():
        expected = net(x).asnumpy()
    np.testing.assert_allclose(model.net(x).asnumpy(), expected, rtol=1e-4, atol=1e-5)
    assert model.preprocessing.image_size == IMAGE_SIZE and model.hyperparameters["model"] == "cifar_resnet20_v2"
    assert model.preprocessing.tta == "shift"  # the recipe's TTA travels in preprocessing.json


# --- the loop ---------------------------------------------------------------------------------------
def test_input_batchnorm_learns_running_statistics(channels: dict[str, Path], tmp_path: Path) -> None:
    # cifar_resnet*_v2 starts with a parameter-free BatchNorm on the input. MXNet's CPU BatchNorm
    # updates running stats in backward, which that layer only gets if the input wants a gradient:
    # without it, inference would normalise with mean 0 / var 1 and lose ~half the accuracy.
    from gtsrb.train.checkpoint import TrainingState
    from gtsrb.train.environment import Environment
    from gtsrb.train.loop import train_epoch
    from gtsrb.train.step import prepare_run

    hp = Hyperparameters.from_mapping({"preset": "cpu", "image_size": str(IMAGE_SIZE), "batch_size": "32", "model": "cifar_resnet20_v2"})
    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    run = prepare_run(env, hp)
    train_epoch(run, TrainingState(), epoch=0)
    first_bn = run.net._collect_params_with_prefix()["features.0.running_mean"].data().asnumpy()
    assert np.abs(first_bn).max() > 0.01


def test_sagemaker_arguments_become_hyperparameters() -> None:
    from gtsrb.common.sagemaker_job import args_to_hyperparameters
    from gtsrb.train.environment import parse_args

    args = ["--epochs", "3", "--amp", "False", "--sagemaker_program", "train.py", "--lr", "-1"]
    assert args_to_hyperparameters(args) == {"epochs": "3", "amp": "False", "lr": "-1"}
    with pytest.raises(ValueError, match="cannot read argument 'stray'"):
        args_to_hyperparameters(["stray", "1"])
    with pytest.raises(StepError, match="cannot read argument '--lr'"):  # the train step's own message
        parse_args(["--model-dir", "m", "--epochs", "3", "--lr"])


@pytest.mark.parametrize("name", ["cifar_resnet20_v2", "gtsrb_cnn"])
def test_an_exported_model_seeds_a_new_network(name: str, tmp_path: Path) -> None:
    # An earlier run's model-0000.params (global names such as cifarresnetv22_conv0_weight).
    from gtsrb.train.export import export

    source = create_network(name, GTSRB_NUM_CLASSES)
    initialise(source, IMAGE_SIZE, [mx.cpu()])
    source.save_parameters(str(tmp_path / "net.params"))
    hps = {**Hyperparameters.for_preset("cpu").to_dict(), "image_size": IMAGE_SIZE, "model": name}
    export(tmp_path / "net.params", tmp_path / "model", hps, [], list(GTSRB_CLASS_NAMES))
    net = create_network(name, GTSRB_NUM_CLASSES)
    initialise(net, IMAGE_SIZE, [mx.cpu()])
    assert load_backbone(net, tmp_path / "model" / "model-0000.params") == len(net._collect_params_with_prefix())
    for key, param in source._collect_params_with_prefix().items():
        np.testing.assert_array_equal(net._collect_params_with_prefix()[key].data().asnumpy(), param.data().asnumpy(), err_msg=key)


# --- final fit on train + validation -----------------------------------------------------------------
def test_fit_on_validation_trains_on_both_splits(channels: dict[str, Path], tmp_path: Path) -> None:
    from gtsrb.common import contract
    from gtsrb.common.records import record_count
    from gtsrb.train.environment import Environment
    from gtsrb.train.step import prepare_run

    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    parts = [contract.record_files(channels[s], s) for s in ("train", "validation")]
    run = prepare_run(env, Hyperparameters.from_mapping({"preset": "cpu", "image_size": str(IMAGE_SIZE), "fit_on_validation": "True"}))
    assert run.train_count == record_count(run.train_files) == sum(record_count(p) for p in parts)
    combined = mx.recordio.MXIndexedRecordIO(str(run.train_files.idx), str(run.train_files.rec), "r")
    originals = [mx.recordio.MXIndexedRecordIO(str(p.idx), str(p.rec), "r") for p in parts]
    expected = [reader.read_idx(key) for reader in originals for key in reader.keys]
    assert [combined.read_idx(key) for key in combined.keys] == expected  # every record, bytes unchanged
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())  # nothing for S3 to sync


def test_fit_on_validation_excludes_early_stopping() -> None:
    with pytest.raises(StepError, match="hyperparameter fit_on_validation=True is invalid"):
        Hyperparameters.from_mapping({"fit_on_validation": "True"})  # the GPU recipe stops early


def test_max_train_images_fits_the_epochs_to_the_data() -> None:
    hp = Hyperparameters.from_mapping({"preset": "cpu", "epochs": "24", "max_train_images": "100000"})
    assert hp.fitted_to(3_840).epochs == 24  # the demo set: the cap does not bite
    assert hp.fitted_to(21_000).epochs == 4  # 100,000 // 21,000
    assert hp.fitted_to(1_000_000).epochs == int(hp.warmup_epochs) + 1  # never only warmup
    assert Hyperparameters.from_mapping({"preset": "cpu", "max_train_images": "0"}).fitted_to(10**9).epochs == hp.epochs
    with pytest.raises(StepError, match="hyperparameter max_train_images=-1 is invalid"):
        Hyperparameters.from_mapping({"max_train_images": "-1"})


def test_the_run_trains_the_fitted_epochs(channels: dict[str, Path], tmp_path: Path) -> None:
    from gtsrb.common import contract
    from gtsrb.common.records import record_count
    from gtsrb.train.environment import Environment
    from gtsrb.train.loop import _rate
    from gtsrb.train.step import prepare_run

    count = record_count(contract.record_files(channels["train"], "train"))
    env = Environment(channels["train"], channels["validation"], None, tmp_path / "model", tmp_path / "ckpt", 0)
    hps = {"preset": "cpu", "image_size": str(IMAGE_SIZE), "epochs": "10", "max_train_images": str(3 * count + 1),
           "fit_on_validation": "False"}
    run = prepare_run(env, Hyperparameters.from_mapping(hps))
    assert run.hp.epochs == 3 and run.hp.to_dict()["epochs"] == 3  # saved with the model and checkpoints
    assert _rate(run, 3 * run.steps_per_epoch - 1) < 0.1 * run.hp.lr  # the cosine ends with the fitted epochs


def test_min_class_share_repeats_rare_classes(channels: dict[str, Path], tmp_path: Path) -> None:
    from collections import Counter

    from gtsrb.common import contract
    from gtsrb.train.combine import combine_splits, copies_per_class, read_records

    assert copies_per_class([0] * 100 + [1] * 10 + [2] * 60, 0.5) == {0: 1, 1: 5, 2: 1}
    assert copies_per_class([0] * 100 + [1] * 10, 0.0) == {0: 1, 1: 1}
    train = contract.record_files(channels["train"], "train")
    original = read_records([train])
    rare = original[0][0]
    skewed = [r for r in original if r[0] != rare or r is original[0]]  # one record left of class `rare`
    src = tmp_path / "skewed"
    src.mkdir()
    files = contract.record_files(src, "train")
    writer = mx.recordio.MXIndexedRecordIO(str(files.idx), str(files.rec), "w")
    for i, (_, record) in enumerate(skewed):
        writer.write_idx(i, record)
    writer.close()
    counts = Counter(label for label, _ in read_records([combine_splits([files], tmp_path / "out", 0.5)]))
    largest = max(Counter(label for label, _ in skewed).values())
    assert counts[rare] == math.ceil(0.5 * largest) and min(counts.values()) >= 0.5 * largest
