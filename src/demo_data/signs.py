"""Clean drawings of the 43 GTSRB classes: shapes, colours and glyphs that resemble the real signs.

Each sign is drawn on a transparent SIDE x SIDE canvas (BGRA). The mirror classes of
classes.MIRROR_PAIRS are exact horizontal flips of their partner, as on the road.
"""

from __future__ import annotations

import cv2
import numpy as np

from gtsrb.common.classes import GTSRB_NUM_CLASSES, MIRROR_PAIRS

SIDE = 96
RED, BLUE, WHITE, BLACK = (30, 30, 200), (170, 80, 20), (245, 245, 245), (20, 20, 20)
YELLOW, GREY, GREEN, AMBER = (20, 200, 240), (150, 150, 150), (60, 170, 40), (20, 150, 240)
SPEEDS = {0: "20", 1: "30", 2: "50", 3: "60", 4: "70", 5: "80", 7: "100", 8: "120"}
MIRRORED = {right: left for left, right in MIRROR_PAIRS}  # drawn as the flip of their partner
C = SIDE // 2


def _pts(points: list[tuple[float, float]]) -> np.ndarray:
    """Unit-square coordinates -> pixel polygon."""
    return np.array([[int(x * SIDE), int(y * SIDE)] for x, y in points], np.int32)


def _text(img: np.ndarray, text: str, colour=BLACK, scale: float = 1.0) -> None:
    """Centred bold digits/letters."""
    font, thick = cv2.FONT_HERSHEY_DUPLEX, max(2, int(3 * scale))
    size = 1.25 * scale if len(text) <= 2 else 0.95 * scale
    (w, h), _ = cv2.getTextSize(text, font, size, thick)
    cv2.putText(img, text, (C - w // 2, C + h // 2), font, size, colour, thick, cv2.LINE_AA)


def _line(img, points, colour=BLACK, width=6) -> None:
    cv2.polylines(img, [_pts(points)], False, colour, width, cv2.LINE_AA)


def _arrow(img, start, end, colour=WHITE, width=9) -> None:
    cv2.arrowedLine(img, tuple(_pts([start])[0]), tuple(_pts([end])[0]), colour, width, cv2.LINE_AA, tipLength=0.4)


def _round(img, ring, fill) -> None:
    """A round sign: coloured ring (or none) around a fill."""
    cv2.circle(img, (C, C), C - 2, ring, -1, cv2.LINE_AA)
    cv2.circle(img, (C, C), int(C * 0.74) if ring != fill else C - 2, fill, -1, cv2.LINE_AA)


def _triangle(img, down: bool = False) -> None:
    """A red-bordered warning triangle (pointing up) or yield triangle (down)."""
    outer = [(0.5, 0.04), (0.97, 0.9), (0.03, 0.9)] if not down else [(0.03, 0.1), (0.97, 0.1), (0.5, 0.96)]
    inner = [(0.5, 0.25), (0.8, 0.8), (0.2, 0.8)] if not down else [(0.2, 0.2), (0.8, 0.2), (0.5, 0.75)]
    cv2.fillPoly(img, [_pts(outer)], RED, cv2.LINE_AA)
    cv2.fillPoly(img, [_pts(inner)], WHITE, cv2.LINE_AA)


def _box(img, x0: float, y0: float, x1: float, y1: float, colour) -> None:
    cv2.rectangle(img, tuple(_pts([(x0, y0)])[0]), tuple(_pts([(x1, y1)])[0]), colour, -1)


def _vehicle(img, x: float, colour, truck: bool = False) -> None:
    """A car or a truck seen from behind, as on the (end of) no-passing signs.

    As on the real pictograms (signs 276/277/280/281), the truck is a tall box about 1.3x the
    car's width and 1.5x its height, the car a low body under a narrower cabin, both on wheels.
    """
    if truck:
        _box(img, x - 0.105, 0.33, x + 0.105, 0.64, colour)
    else:
        _box(img, x - 0.08, 0.49, x + 0.08, 0.62, colour)  # body
        _box(img, x - 0.055, 0.4, x + 0.055, 0.5, colour)  # cabin
    for side in (-1, 1):  # wheels
        _box(img, x + side * 0.065 - 0.02, 0.62, x + side * 0.065 + 0.02, 0.67, colour)


def _end_stripes(img) -> None:
    """The diagonal black stripes of the 'end of ...' signs."""
    for offset in (-0.08, 0.0, 0.08):
        _line(img, [(0.2 + offset, 0.8 + offset), (0.8 + offset, 0.2 + offset)], BLACK, 3)


def _glyph_warning(img, class_id: int) -> None:
    """The black pictogram inside each warning triangle (classes 18-31)."""
    g = {
        18: lambda: (_line(img, [(0.5, 0.42), (0.5, 0.64)], BLACK, 7), cv2.circle(img, (C, int(0.73 * SIDE)), 4, BLACK, -1)),
        19: lambda: _line(img, [(0.58, 0.76), (0.58, 0.55), (0.4, 0.42)]),
        21: lambda: _line(img, [(0.45, 0.76), (0.58, 0.62), (0.42, 0.5), (0.55, 0.38)]),
        22: lambda: _line(img, [(0.3, 0.7), (0.4, 0.58), (0.5, 0.7), (0.6, 0.58), (0.7, 0.7)]),
        23: lambda: (_vehicle(img, 0.5, BLACK), _line(img, [(0.32, 0.75), (0.42, 0.68), (0.5, 0.75), (0.6, 0.68), (0.68, 0.75)], BLACK, 3)),
        24: lambda: (_line(img, [(0.4, 0.76), (0.4, 0.4)]), _line(img, [(0.62, 0.76), (0.62, 0.58), (0.53, 0.45), (0.53, 0.4)])),
        25: lambda: (cv2.circle(img, (int(0.45 * SIDE), int(0.45 * SIDE)), 5, BLACK, -1), _line(img, [(0.45, 0.5), (0.5, 0.65), (0.62, 0.75)]), _line(img, [(0.3, 0.76), (0.7, 0.76)], BLACK, 4)),
        26: lambda: [cv2.circle(img, (C, int(y * SIDE)), 6, col, -1) for y, col in ((0.45, RED), (0.58, AMBER), (0.71, GREEN))],
        27: lambda: (cv2.circle(img, (C, int(0.42 * SIDE)), 5, BLACK, -1), _line(img, [(0.42, 0.76), (0.5, 0.5), (0.58, 0.76)])),
        28: lambda: (_line(img, [(0.36, 0.76), (0.42, 0.5), (0.48, 0.76)], BLACK, 5), _line(img, [(0.54, 0.76), (0.6, 0.55), (0.66, 0.76)], BLACK, 4)),
        29: lambda: [cv2.circle(img, (int(x * SIDE), int(0.66 * SIDE)), 8, BLACK, 3) for x in (0.4, 0.6)],
        30: lambda: [_line(img, [(0.5 + 0.13 * np.cos(a), 0.6 + 0.13 * np.sin(a)), (0.5 - 0.13 * np.cos(a), 0.6 - 0.13 * np.sin(a))], BLACK, 3) for a in (0, 1.05, 2.1)],
        31: lambda: cv2.fillPoly(img, [_pts([(0.35, 0.72), (0.42, 0.5), (0.6, 0.47), (0.66, 0.4), (0.66, 0.72), (0.6, 0.58), (0.45, 0.6)])], BLACK),
    }
    g[class_id]()


def _draw(class_id: int, img: np.ndarray) -> None:
    """Paint the (non-mirrored) sign of `class_id` onto the canvas."""
    if class_id in SPEEDS:
        _round(img, RED, WHITE)
        _text(img, SPEEDS[class_id])
    elif class_id in (6, 32, 41, 42):
        _round(img, GREY, WHITE)
        if class_id == 6:
            _text(img, "80", GREY)
        elif class_id in (41, 42):
            _vehicle(img, 0.38, GREY, truck=class_id == 42)
            _vehicle(img, 0.62, GREY)
        _end_stripes(img)
    elif class_id in (9, 10, 15, 16):
        _round(img, RED, WHITE)
        if class_id in (9, 10):
            _vehicle(img, 0.38, RED if class_id == 9 else BLACK, truck=class_id == 10)
            _vehicle(img, 0.62, BLACK if class_id == 9 else RED)
        elif class_id == 16:
            _vehicle(img, 0.5, BLACK, truck=True)
    elif class_id == 11:
        _triangle(img)
        _line(img, [(0.5, 0.4), (0.5, 0.76)], BLACK, 7)
        _line(img, [(0.38, 0.58), (0.62, 0.58)], BLACK, 7)
    elif class_id == 12:
        cv2.fillPoly(img, [_pts([(0.5, 0.02), (0.98, 0.5), (0.5, 0.98), (0.02, 0.5)])], WHITE, cv2.LINE_AA)
        cv2.fillPoly(img, [_pts([(0.5, 0.18), (0.82, 0.5), (0.5, 0.82), (0.18, 0.5)])], YELLOW, cv2.LINE_AA)
    elif class_id == 13:
        _triangle(img, down=True)
    elif class_id == 14:
        angles = np.deg2rad(22.5 + 45 * np.arange(8))
        cv2.fillPoly(img, [_pts([(0.5 + 0.48 * np.cos(a), 0.5 + 0.48 * np.sin(a)) for a in angles])], RED, cv2.LINE_AA)
        _text(img, "STOP", WHITE, 0.8)
    elif class_id == 17:
        _round(img, RED, RED)
        cv2.rectangle(img, tuple(_pts([(0.2, 0.42)])[0]), tuple(_pts([(0.8, 0.58)])[0]), WHITE, -1)
    elif 18 <= class_id <= 31:
        _triangle(img)
        _glyph_warning(img, class_id)
    else:
        _round(img, BLUE, BLUE)
        _draw_blue(class_id, img)


def _draw_blue(class_id: int, img: np.ndarray) -> None:
    """White arrows on the blue mandatory signs (33, 35, 36, 38, 40; the others are mirrors)."""
    if class_id == 33:
        _line(img, [(0.4, 0.78), (0.4, 0.45), (0.5, 0.38)], WHITE, 9)
        _arrow(img, (0.48, 0.38), (0.75, 0.38))
    elif class_id == 35:
        _arrow(img, (0.5, 0.82), (0.5, 0.18))
    elif class_id == 36:
        _arrow(img, (0.42, 0.82), (0.42, 0.18))
        _line(img, [(0.42, 0.6), (0.55, 0.45)], WHITE, 9)
        _arrow(img, (0.53, 0.46), (0.8, 0.46))
    elif class_id == 38:
        _arrow(img, (0.3, 0.3), (0.72, 0.72))
    elif class_id == 40:
        for a in (0.0, 2.1, 4.2):
            start = (0.5 + 0.24 * np.cos(a), 0.5 + 0.24 * np.sin(a))
            end = (0.5 + 0.24 * np.cos(a + 1.3), 0.5 + 0.24 * np.sin(a + 1.3))
            _arrow(img, start, end, WHITE, 7)


def shape_and_colour(class_id: int) -> tuple[int, int]:
    """Kaggle Meta.csv ids. ShapeId: 0 triangle, 1 circle, 2 diamond, 3 inverted triangle, 4 octagon;
    ColorId: 0 red, 1 blue, 2 yellow, 3 white (the colour that frames the sign)."""
    if class_id == 11 or 18 <= class_id <= 31:
        return 0, 0
    if class_id == 12:
        return 2, 2
    if class_id == 13:
        return 3, 0
    if class_id == 14:
        return 4, 0
    if class_id in (6, 32, 41, 42):
        return 1, 3
    return (1, 1) if class_id >= 33 else (1, 0)


def draw_sign(class_id: int) -> np.ndarray:
    """The clean SIDE x SIDE BGRA drawing of a class (alpha 0 outside the sign)."""
    if not 0 <= class_id < GTSRB_NUM_CLASSES:
        raise ValueError(f"class {class_id} is outside 0-{GTSRB_NUM_CLASSES - 1}")
    if class_id in MIRRORED:
        return np.ascontiguousarray(draw_sign(MIRRORED[class_id])[:, ::-1])
    colour = np.zeros((SIDE, SIDE, 3), np.uint8)
    _draw(class_id, colour)
    alpha = (colour.max(axis=2) > 0).astype(np.uint8) * 255
    return np.dstack([colour, alpha])
