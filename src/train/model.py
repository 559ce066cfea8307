"""The network: a gluoncv zoo model with a head of the data's classes, optionally on pretrained weights.

Supported families and their classifier heads:
- ResNet v1b/v1c/v1d/v1s (`resnet50_v1d`, ...): head `.fc`, a Dense.
- ResNet v1/v2 (`resnet18_v1`, ...), CIFAR ResNets (`cifar_resnet20_v1`, ...): head `.output`, a Dense.
- MobileNetV3 (`mobilenetv3_small/large`): head `.output`, a HybridSequential whose last Conv2D
  is the classifier (the 1280-wide Conv2D before it is pretrained and kept).
- `gtsrb_cnn` (ours, the CPU recipe): a plain VGG-style CNN with BatchNorm, head `.output`, a Dense.
  On 2 CPU cores it trains ~4x faster per image than cifar_resnet20_v2 (docs/accuracy.md), so
  a time budget buys ~4x the epochs; there are no pretrained weights for it.
Building with `classes=N` (the data's class count) makes the same structure as loading the 1000-class net and swapping
the classifier; pretrained weights are then copied into every parameter whose name and shape
match, so the backbone keeps its weights and only the classifier starts from random.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import mxnet as mx
from gluoncv.model_zoo import get_model
from mxnet import gluon

from gtsrb.common.failure import StepError

log = logging.getLogger(__name__)

SUPPORTED_MODELS = re.compile(r"^(resnet\d+_v1[bcds]?|resnet\d+_v2|cifar_resnet\d+_v[12]|mobilenetv3_(small|large)|gtsrb_cnn)$")
SUPPORTED_TEXT = "resnet*_v1b/v1c/v1d/v1s/v1/v2 (e.g. resnet50_v1d), cifar_resnet*_v1/v2, mobilenetv3_small/large, gtsrb_cnn"
# gtsrb_cnn: (output channels, number of 3x3 convs) of each block; every block ends in a 2x2 max-pool.
CNN_BLOCKS: tuple[tuple[int, int], ...] = ((32, 1), (64, 1), (128, 2))  # ~0.25M parameters; a second conv in the
# first blocks cost ~40% of the speed on 2 cores (docs/accuracy.md)
CNN_DROPOUT = 0.3  # before the classifier: the net is small, but GTSRB tracks are near-duplicates


class GtsrbCNN(gluon.HybridBlock):
    """A plain VGG-style CNN with BatchNorm (~0.29M parameters): fast on CPU at 32-48 px.

    Global average pooling makes it independent of the input side, so one definition serves
    every image_size; plain 3x3 convs run well on MXNet's CPU (oneDNN) kernels.
    """

    def __init__(self, classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = gluon.nn.HybridSequential(prefix="")
            for width, convs in CNN_BLOCKS:
                for _ in range(convs):
                    self.features.add(gluon.nn.Conv2D(width, 3, padding=1, use_bias=False))
                    self.features.add(gluon.nn.BatchNorm())
                    self.features.add(gluon.nn.Activation("relu"))
                self.features.add(gluon.nn.MaxPool2D(2))
            self.features.add(gluon.nn.GlobalAvgPool2D(), gluon.nn.Flatten(), gluon.nn.Dropout(CNN_DROPOUT))
            self.output = gluon.nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def create_network(name: str, num_classes: int) -> gluon.HybridBlock:
    """A fresh, uninitialised zoo network with `num_classes` outputs; unknown names fail clearly."""
    if not SUPPORTED_MODELS.match(name):
        raise StepError(f"model={name!r} is not supported; use one of {SUPPORTED_TEXT}.")
    if name == "gtsrb_cnn":
        return GtsrbCNN(classes=num_classes)
    try:
        return get_model(name, classes=num_classes, pretrained=False)
    except ValueError as err:  # matches the pattern but is not in the zoo, e.g. resnet19_v1b
        raise StepError(f"model={name!r} is not in the gluoncv model zoo; use one of {SUPPORTED_TEXT}.") from err


def has_input_batchnorm(name: str) -> bool:
    """Pre-activation ResNets (`*_v2`) normalise the raw input with a BatchNorm (see loop.train_batch)."""
    return name.endswith("_v2")


def classifier(net: gluon.HybridBlock) -> gluon.HybridBlock:
    """The layer that maps features to class scores (the part that starts from random)."""
    head = net.fc if hasattr(net, "fc") else net.output
    if isinstance(head, gluon.nn.HybridSequential):
        layers = [b for b in head._children.values() if isinstance(b, (gluon.nn.Dense, gluon.nn.Conv2D))]
        head = layers[-1]  # MobileNetV3: Conv2D(1280 -> classes) followed by Flatten
    return head


def initialise(net: gluon.HybridBlock, image_size: int, ctx: list[mx.Context]) -> None:
    """Xavier-initialise and run one forward pass so that every shape is known."""
    net.initialize(mx.init.Xavier(), ctx=ctx)
    net(mx.nd.zeros((1, 3, image_size, image_size), ctx=ctx[0]))


def load_backbone(net: gluon.HybridBlock, params_file: Path) -> int:
    """Copy every weight of `params_file` whose name and shape match into `net`; return the count.

    Accepts the 1000-class zoo file, a backbone-only file, a checkpoint of the same classes, or an exported
    model's `model-0000.params` (global parameter names). The classifier
    keeps its random init unless the file has a same-shaped one. Fails if any non-classifier
    parameter is left without a weight: that is a file for another architecture.
    """
    try:
        saved = mx.nd.load(str(params_file))
    except mx.base.MXNetError as err:
        raise StepError(f"{params_file} is not an MXNet .params file ({str(err).splitlines()[0]}).") from err
    saved = {k.split(":", 1)[-1]: v for k, v in saved.items()}  # Module-style "arg:" / "aux:" prefixes
    local = _local_names(saved, net.prefix)
    head_ids = {id(p) for p in classifier(net).collect_params().values()}
    missing, loaded = [], 0
    for name, param in net._collect_params_with_prefix().items():
        value = saved.get(name)
        if value is None:  # an exported model's params (e.g. an earlier model-0000.params)
            value = local.get(param.name[len(net.prefix):])
        if value is not None and value.shape == param.shape:
            param.set_data(value)
            loaded += 1
        elif id(param) not in head_ids:
            missing.append(name)
    if missing:
        raise StepError(
            f"{params_file} does not fit this model: {len(missing)} backbone parameters are missing "
            f"or differ in shape (first: {missing[0]}); give weights of the same architecture."
        )
    log.info("event=pretrained file=%s loaded=%d", params_file, loaded)
    return loaded


def _local_names(saved: dict[str, mx.nd.NDArray], prefix: str) -> dict[str, mx.nd.NDArray]:
    """Saved global names (`cifarresnetv22_conv0_weight`, as HybridBlock.export writes them) without
    the network's prefix, whose counter differs from process to process."""
    if not prefix:
        return dict(saved)
    pattern = re.compile(rf"^{re.escape(re.sub(r'[0-9]*_$', '', prefix))}[0-9]*_")
    return {pattern.sub("", key): value for key, value in saved.items()}


def set_multipliers(net: gluon.HybridBlock, head_lr_mult: float) -> None:
    """No weight decay on biases and BatchNorm; the classifier learns `head_lr_mult` times faster."""
    for name, param in net._collect_params_with_prefix().items():
        if name.endswith(("bias", "gamma", "beta")):
            param.wd_mult = 0.0
    for param in classifier(net).collect_params().values():
        param.lr_mult = head_lr_mult


def build_network(
    name: str, num_classes: int, image_size: int, ctx: list[mx.Context], weights: Path | None, head_lr_mult: float
) -> gluon.HybridBlock:
    """Create, initialise, optionally load pretrained weights, set multipliers, hybridize."""
    net = create_network(name, num_classes)
    initialise(net, image_size, ctx)
    if weights is not None:
        load_backbone(net, weights)
    set_multipliers(net, head_lr_mult)
    net.hybridize(static_alloc=True, static_shape=True)
    return net
