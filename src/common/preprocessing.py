"""How an image becomes a network input: one definition for prepare, train, evaluate and serving.

Prepare packs every sign as a square image of `stored_size(image_size)` pixels; training
crops `image_size` at random positions out of it (so the sign shifts a little), evaluation and
inference take the centre crop; both normalise with the same mean and std.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# Test-time augmentation: mode -> views (dy, dx, degrees), pixel shifts and rotations of the already
# normalised input whose softmax outputs are averaged (gtsrb.common.inference scores them). Shifts and
# rotations, never mirrors: mirrored signs are other classes. Part of a model's input contract, so
# every scorer applies the model's own mode.
TTA_VIEWS: dict[str, tuple[tuple[int, int, float], ...]] = {
    "none": ((0, 0, 0.0),),
    "shift": ((0, 0, 0.0), (-2, 0, 0.0), (2, 0, 0.0), (0, -2, 0.0), (0, 2, 0.0)),  # the centre and four 2 px shifts
    # the centre and both ends of the training rotation (10 degrees): signs tilted beyond it (the CPU preset's)
    "rotate": ((0, 0, 0.0), (0, 0, -10.0), (0, 0, 10.0)),
}
TTA_MODES: tuple[str, ...] = tuple(TTA_VIEWS)

# Contrast equalisation of each image before the network (gtsrb.common.image_input.equalize applies
# it; every reader of a model's input applies the model's own mode): "clahe" = contrast-limited
# adaptive histogram equalisation of the luminance, which lifts dark and faded signs.
EQUALIZE_MODES: tuple[str, ...] = ("none", "clahe")

# ImageNet statistics (RGB, 0-255): the pretrained backbones were trained with them.
IMAGENET_MEAN_RGB: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD_RGB: tuple[float, float, float] = (58.395, 57.12, 57.375)


def stored_size(image_size: int) -> int:
    """Side of the packed images for a network input of `image_size`: 1/8 larger, for random crops."""
    return image_size + image_size // 8


@dataclass(frozen=True)
class Preprocessing:
    """The input contract of a trained model; saved next to it as preprocessing.json."""

    image_size: int  # network input is image_size x image_size RGB
    mean_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std_rgb: tuple[float, float, float] = IMAGENET_STD_RGB
    layout: str = "NCHW"
    tta: str = "none"  # test-time augmentation every scorer applies (TTA_MODES)
    equalize: str = "none"  # contrast equalisation of each image before cropping (EQUALIZE_MODES)

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise ValueError(f"tta={self.tta!r} is unknown; use one of {', '.join(TTA_MODES)}")
        if self.equalize not in EQUALIZE_MODES:
            raise ValueError(f"equalize={self.equalize!r} is unknown; use one of {', '.join(EQUALIZE_MODES)}")

    @property
    def data_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) as mx.io.ImageRecordIter's data_shape wants it."""
        return (3, self.image_size, self.image_size)

    def normalize_kwargs(self) -> dict[str, float]:
        """The mean_r/g/b and std_r/g/b arguments of mx.io.ImageRecordIter."""
        (mr, mg, mb), (sr, sg, sb) = self.mean_rgb, self.std_rgb
        return dict(mean_r=mr, mean_g=mg, mean_b=mb, std_r=sr, std_g=sg, std_b=sb)

    @classmethod
    def for_hyperparameters(cls, hyperparameters: dict) -> Preprocessing:
        """The input contract a training run with these hyperparameters trains and exports with."""
        return cls(image_size=int(hyperparameters["image_size"]), tta=str(hyperparameters.get("tta", "none")),
                   equalize=str(hyperparameters.get("equalize", "none")))

    def save(self, path: str | Path) -> None:
        """Write as JSON (lists for tuples)."""
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Preprocessing:
        """Read what save() wrote."""
        raw = json.loads(Path(path).read_text())
        return cls(
            image_size=int(raw["image_size"]),
            mean_rgb=tuple(raw["mean_rgb"]),
            std_rgb=tuple(raw["std_rgb"]),
            layout=raw.get("layout", "NCHW"),
            tta=raw.get("tta", "none"),  # models saved before TTA existed score one view
            equalize=raw.get("equalize", "none"),  # models saved before it existed saw the packed images as they are
        )


# Network input side of the default (GPU, pretrained ResNet) recipe for real GTSRB; prepare
# packs at stored_size() of it unless told otherwise. Signs are 15-250 px (median ~45 px), so
# 96 px upsamples most of them a little, which suits ImageNet backbones (receptive fields sized
# for larger objects) at a fraction of the cost of 224 px.
DEFAULT_IMAGE_SIZE = 96
