"""One image in, one packed record out: decode, convert, crop to the sign, resize, encode.

Runs in worker processes. A file that cannot become an RGB image is not an error here: it comes
back with the reason, and the step decides (skip and list it, or fail past a share).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


from gtsrb.prepare.layouts import Sample

# Largest image decoded (pixels). GTSRB photos are at most ~250x250; a header claiming more is
# a corrupt or hostile file, and decoding it could take gigabytes in every worker (OOM killer).
MAX_PIXELS = 40_000_000


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


def header_size(raw: bytes) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding its pixels; None if PIL cannot tell."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as image:
                return image.size
        except Image.DecompressionBombError:
            return MAX_PIXELS + 1, 1  # PIL refused the header's size: larger than any cap of ours
        except Exception:  # noqa: BLE001 - not a format PIL reads: OpenCV decides below
            return None


def too_large(raw: bytes) -> str | None:
    """The skip reason when the header claims more than MAX_PIXELS pixels, else None."""
    size = header_size(raw)
    if size is None or size[0] * size[1] <= MAX_PIXELS:
        return None
    claimed = "" if size[1] == 1 else f" ({size[0]}x{size[1]})"
    return f"the header claims an image too large to decode{claimed}; at most {MAX_PIXELS} pixels are allowed"


def decode(raw: bytes) -> tuple[np.ndarray | None, str | None, str | None]:
    """(BGR uint8 image, conversion, skip reason) from the file's bytes."""
    if not raw:
        return None, None, "empty file (0 bytes)"
    if reason := too_large(raw):
        return None, None, reason
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # OpenCV's own size limit, or a failed allocation
        return None, None, f"OpenCV cannot decode it ({str(err).strip().splitlines()[-1]})"
    if image is None or image.size == 0:
        return None, None, "not a decodable image (truncated, corrupt or not an image file)"
    conversion = None
    if image.dtype != np.uint8:
        if image.dtype != np.uint16:
            return None, None, f"unsupported pixel type {image.dtype}"
        image, conversion = (image / 257.0).round().astype(np.uint8), "16-bit"
    if image.ndim == 2 or image.shape[2] == 1:
        image, conversion = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), conversion or "grayscale"
    elif image.shape[2] == 4:
        image, conversion = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), conversion or "rgba"
    return image, conversion, None


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


def to_square(image: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """Resize to size x size (area filter down, cubic up); say whether it was upscaled."""
    upscaled = max(image.shape[:2]) < size
    interpolation = cv2.INTER_CUBIC if upscaled else cv2.INTER_AREA
    return cv2.resize(image, (size, size), interpolation=interpolation), upscaled


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
    if options.roi_crop:
        x0, y0, x1, y1 = crop_box(scaled_roi(sample, width, height), width, height, options.roi_margin)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return Packed(None, reason=f"ROI {sample.roi} lies outside the {width}x{height} image", sha1=sha1)
        image = image[y0:y1, x0:x1]
    square, upscaled = to_square(image, options.stored_size)
    ok, jpeg = cv2.imencode(".jpg", square, [cv2.IMWRITE_JPEG_QUALITY, options.quality])
    if not ok:
        return Packed(None, reason="JPEG encoding failed", sha1=sha1)
    return Packed(jpeg.tobytes(), None, conversion, upscaled, width, height, sha1)
