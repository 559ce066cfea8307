"""Image files to network inputs: decoding (prepare, serving) and the evaluation transform (serving).

Prepare decodes and squares every image before packing it; evaluate then centre-crops and
normalises the packed squares inside mx.io.ImageRecordIter. Serving gets image files, so it runs
the same decode and square here, then `to_input`, which is the iterator's centre crop and
normalisation in numpy (tests/serve checks it against evaluate, class for class).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from gtsrb.common.preprocessing import Preprocessing, stored_size

# Larger images are refused before decoding: 50 MP is a 150 MB RGB buffer per worker, far past
# any sign crop, and a small compressed file can claim billions of pixels.
MAX_PIXELS = 50_000_000


def decode(raw: bytes) -> tuple[np.ndarray | None, str | None, str | None]:
    """(BGR uint8 image, conversion, reason it cannot be used) from an image file's bytes."""
    if not raw:
        return None, None, "empty file (0 bytes)"
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
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


def header_size_problem(raw: bytes) -> str | None:
    """Why an image must not be decoded, judged from its header alone (size), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning: we judge the size ourselves
            with Image.open(io.BytesIO(raw)) as header:
                width, height = header.size
    except Image.DecompressionBombError:
        return f"the image is larger than {MAX_PIXELS:,} pixels"
    except Exception:  # noqa: BLE001 - PIL raises many types for non-images; cv2 decides below
        return None
    if width * height > MAX_PIXELS:
        return f"the image is {width}x{height} pixels, more than {MAX_PIXELS:,}"
    return None


def decode_checked(raw: bytes) -> tuple[np.ndarray | None, str | None]:
    """(BGR image, None) or (None, reason): decode() behind the header size check."""
    reason = header_size_problem(raw) if raw else None
    if reason:
        return None, reason
    image, _, reason = decode(raw)
    return image, reason


def to_square(image: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """Resize to size x size (area filter down, cubic up); say whether it was upscaled."""
    upscaled = max(image.shape[:2]) < size
    interpolation = cv2.INTER_CUBIC if upscaled else cv2.INTER_AREA
    return cv2.resize(image, (size, size), interpolation=interpolation), upscaled


def to_input(image_bgr: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """One image as the network input (3, S, S) float32: squared as prepare packs, then evaluated.

    Squares to stored_size as the prepare step does, then takes ImageRecordIter's centre crop
    (offset (side - S) // 2) and normalises RGB with the model's mean and std.
    """
    side = stored_size(prep.image_size)
    if image_bgr.shape[:2] != (side, side):
        image_bgr, _ = to_square(image_bgr, side)
    top = left = (side - prep.image_size) // 2
    crop = image_bgr[top : top + prep.image_size, left : left + prep.image_size, ::-1].astype(np.float32)
    crop = (crop - np.asarray(prep.mean_rgb, np.float32)) / np.asarray(prep.std_rgb, np.float32)
    return crop.transpose(2, 0, 1)
