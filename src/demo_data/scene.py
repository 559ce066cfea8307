"""Photograph a clean sign: a track of frames of one physical sign, as a car approaches it.

A "physical sign" fixes colour fading, tilt and background; each frame then varies size
(growing along the track, ~15-250 px like GTSRB), blur, noise and brightness. The sign fills
the frame but for a ~10% margin, and its box is returned as GTSRB's inclusive ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gtsrb.demo_data.signs import SIDE, draw_sign

MARGIN = 0.1  # GTSRB images keep ~10% (at least 5 px) around the sign
BACKDROP = 2 * SIDE  # the scene behind a sign; the view of it shifts from frame to frame


@dataclass(frozen=True)
class PhysicalSign:
    """What stays the same across a track."""

    class_id: int
    tilt_deg: float
    fade: float  # 0 = fresh paint, 0.35 = washed out
    tint: tuple[float, float, float]  # BGR colour cast of the scene
    skew: float  # perspective: one vertical edge this much taller than the other (camera off-axis)
    drawing: np.ndarray  # SIDE x SIDE BGRA clean sign, its paint slightly off the class colours
    background: np.ndarray  # BACKDROP px BGR clutter; each frame sees a SIDE px window of it


def physical_sign(class_id: int, rng: np.random.Generator) -> PhysicalSign:
    """Draw the fixed look of one sign at one place."""
    return PhysicalSign(
        class_id=class_id,
        tilt_deg=float(rng.normal(0, 4)),
        fade=float(rng.uniform(0, 0.35)),
        tint=tuple(rng.uniform(0.8, 1.2, 3)),
        skew=float(rng.uniform(-0.12, 0.12)),
        drawing=repaint(draw_sign(class_id), rng),
        background=clutter(rng),
    )


def repaint(drawing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift the paint a little per channel: no two physical signs have exactly the same colours."""
    paint = drawing[:, :, :3].astype(np.float32) * rng.uniform(0.85, 1.1, 3) + rng.uniform(-12, 12, 3)
    return np.dstack([np.clip(paint, 0, 255).astype(np.uint8), drawing[:, :, 3]])


def clutter(rng: np.random.Generator) -> np.ndarray:
    """A sky/foliage/building-like background: a gradient with random blocks and lines."""
    top, bottom = rng.uniform(40, 220, 3), rng.uniform(20, 160, 3)
    ramp = np.linspace(0, 1, BACKDROP)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).repeat(BACKDROP, axis=1).astype(np.uint8)
    for _ in range(rng.integers(4, 12)):
        x, y = rng.integers(0, BACKDROP, 2)
        w, h = rng.integers(8, 60, 2)
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), rng.uniform(0, 255, 3).tolist(), -1)
    for _ in range(rng.integers(1, 6)):
        p, q = rng.integers(0, BACKDROP, 2), rng.integers(0, BACKDROP, 2)
        cv2.line(image, tuple(map(int, p)), tuple(map(int, q)), rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 5)))
    return cv2.GaussianBlur(image, (5, 5), 0)


def warp(sign: PhysicalSign, rng: np.random.Generator) -> np.ndarray:
    """This frame's view of the sign: tilt, a slight perspective (off-axis camera) and shift."""
    angle = np.deg2rad(sign.tilt_deg + rng.normal(0, 1.5))
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
    skewed = corners * (1 + np.array([[-1], [1], [1], [-1]]) * sign.skew * np.array([0, 1]))  # near edge taller
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    half = SIDE * (1 - 2 * MARGIN) / 2 / (1 + abs(sign.skew))
    centre = SIDE / 2 + rng.uniform(-0.025, 0.025, 2) * SIDE  # the crop is not perfectly centred
    target = (skewed * (1 + rng.normal(0, 0.02, (4, 2)))) @ rotation.T * half + centre
    source = np.array([[0, 0], [SIDE, 0], [SIDE, SIDE], [0, SIDE]], np.float32)
    return cv2.getPerspectiveTransform(source, target.astype(np.float32))


def compose(sign: PhysicalSign, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The sign over its background at SIDE px (BGR) and its coverage mask (0-1)."""
    layer = cv2.warpPerspective(sign.drawing, warp(sign, rng), (SIDE, SIDE), flags=cv2.INTER_LINEAR)
    alpha = layer[:, :, 3:4] / 255.0
    paint = layer[:, :, :3] * (1 - sign.fade) + 200 * sign.fade
    x, y = rng.integers(0, BACKDROP - SIDE, 2)  # parallax: the background moves behind the sign
    background = sign.background[y : y + SIDE, x : x + SIDE]
    return (paint * alpha + background * (1 - alpha)).astype(np.uint8), alpha[:, :, 0]


def roi_of(alpha: np.ndarray, side: int) -> tuple[int, int, int, int]:
    """GTSRB's inclusive sign box in a `side` px frame, from the sign's coverage mask."""
    mask = cv2.resize(alpha.astype(np.float32), (side, side), interpolation=cv2.INTER_AREA) > 0.5
    ys, xs = np.nonzero(mask)
    lo = max(1, int(round(0.05 * side)))  # the box never touches the frame edge, as in GTSRB
    x1, y1 = max(lo, int(xs.min())), max(lo, int(ys.min()))
    x2, y2 = min(side - 1 - lo, int(xs.max())), min(side - 1 - lo, int(ys.max()))
    return x1, y1, x2, y2


def photograph(sign: PhysicalSign, side: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """One frame of `side` px and the sign's inclusive ROI in it."""
    scene, alpha = compose(sign, rng)
    scene = scene.astype(np.float32) * np.array(sign.tint, np.float32) * rng.uniform(0.45, 1.3)  # light, colour cast
    scene = (scene - 128) * rng.uniform(0.7, 1.2) + 128  # contrast
    image = cv2.resize(np.clip(scene, 0, 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA)
    blur = rng.uniform(0, 1.2) * side / 40  # motion/focus blur grows with apparent size
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    noise = rng.normal(0, rng.uniform(2, 10), image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image, roi_of(alpha, side)


def track_sides(frames: int, rng: np.random.Generator, smallest: int = 15, largest: int = 250) -> list[int]:
    """Growing frame sizes: most tracks stay small (median GTSRB sign ~35-50 px)."""
    start = rng.uniform(smallest, 32)
    end = min(largest, start * rng.uniform(1.6, 4.0) * (3.0 if rng.random() < 0.1 else 1.0))
    return [int(round(s)) for s in np.geomspace(start, end, frames)]
