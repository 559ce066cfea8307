"""One image in, one packed record out: decode, convert, crop to the sign, resize, encode.

Runs in worker processes. A file that cannot become an RGB image is not an error here: it comes
back with the reason, and the step decides (skip and list it, or fail past a share).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2

from gtsrb.common.image_input import decode, to_square
from gtsrb.prepare.layouts import Sample


@dataclass(frozen=True)
class ImageOptions:
    """How every image is turned into a record."""

    stored_size: int  # side of the square packed image
    roi_crop: bool  # crop to the annotated sign box (plus margin) before resizing
    roi_margin: float  # margin added on each side, as a share of the box's width/height
    quality: int  # JPEG quality of the packed image


@dataclass(frozen=True)
class Packed:
    """The outcome for one sample: JPEG bytes, or the reason it was skipped."""

    jpeg: bytes | None
    reason: str | None = None
    conversion: str | None = None  # "grayscale", "rgba" or "16-bit" when converted
    upscaled: bool = False
    width: int = 0
    height: int = 0
    sha1: str = ""


def crop_box(roi: tuple[int, int, int, int], width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The crop (x0, y0, x1, y1; end exclusive) of an inclusive ROI plus margin, inside the image."""
    x1, y1, x2, y2 = roi
    dx, dy = margin * (x2 - x1 + 1), margin * (y2 - y1 + 1)
    x0, y0 = max(0, int(round(x1 - dx))), max(0, int(round(y1 - dy)))
    x_end, y_end = min(width, int(round(x2 + 1 + dx))), min(height, int(round(y2 + 1 + dy)))
    return x0, y0, x_end, y_end


def scaled_roi(sample: Sample, width: int, height: int) -> tuple[int, int, int, int]:
    """The ROI in the image's real pixels: a resized copy keeps its CSV's original Width/Height."""
    if (width, height) == (sample.width, sample.height) or min(sample.width, sample.height) <= 0:
        return sample.roi
    sx, sy = width / sample.width, height / sample.height
    x1, y1, x2, y2 = sample.roi
    return round(x1 * sx), round(y1 * sy), round((x2 + 1) * sx) - 1, round((y2 + 1) * sy) - 1


def pack_image(sample: Sample, options: ImageOptions) -> Packed:
    """Read, convert, crop, resize and JPEG-encode one sample."""
    try:
        raw = sample.path.read_bytes()
    except OSError as err:
        return Packed(None, reason=f"cannot read ({err.strerror or err})")
    image, conversion, reason = decode(raw)
    sha1 = hashlib.sha1(raw).hexdigest()
    if image is None:
        return Packed(None, reason=reason, sha1=sha1)
    height, width = image.shape[:2]
    if options.roi_crop and sample.roi is not None:  # folder-per-class images have no box: kept whole
        x0, y0, x1, y1 = crop_box(scaled_roi(sample, width, height), width, height, options.roi_margin)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return Packed(None, reason=f"ROI {sample.roi} lies outside the {width}x{height} image", sha1=sha1)
        image = image[y0:y1, x0:x1]
    square, upscaled = to_square(image, options.stored_size)
    ok, jpeg = cv2.imencode(".jpg", square, [cv2.IMWRITE_JPEG_QUALITY, options.quality])
    if not ok:
        return Packed(None, reason="JPEG encoding failed", sha1=sha1)
    return Packed(jpeg.tobytes(), None, conversion, upscaled, width, height, sha1)
