"""Image files to network inputs: decoding (prepare, serving) and the evaluation transform (serving).

Prepare decodes and squares every image before packing it; evaluate then centre-crops and
normalises the packed squares inside mx.io.ImageRecordIter. Serving gets image files, so it runs
the same decode and square here, then `to_input`, which is the iterator's centre crop and
normalisation in numpy (tests/serve checks it against evaluate, class for class). A model's
contrast equalisation (`equalize`) is applied to the squared image, here for serving and by
gtsrb.common.records for every reader of packed splits: one function for both.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from gtsrb import MAX_IMAGE_PIXELS
from gtsrb.common.preprocessing import Preprocessing, stored_size

# Largest image decoded (pixels): a larger one could take gigabytes in every worker (the OOM
# killer). Also OpenCV's own cap (OPENCV_IO_MAX_IMAGE_PIXELS, set when the gtsrb package loads).
MAX_PIXELS = MAX_IMAGE_PIXELS

# Only formats whose size Pillow reads from the header are decoded: the size is checked before any
# pixel is. OpenCV also decodes formats Pillow cannot size (Radiance HDR, OpenEXR, PFM, Sun raster):
# a 6 MB HDR file declaring 95 megapixels would cost gigabytes to decode.
UNREADABLE_FORMAT = "not a decodable image (truncated, corrupt, or not a format we read: JPEG, PNG, PPM/PGM, BMP, TIFF, WebP)"


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


def too_large(size: tuple[int, int]) -> str | None:
    """The reason to refuse when the header claims more than MAX_PIXELS pixels, else None."""
    if size[0] * size[1] <= MAX_PIXELS:
        return None
    claimed = "" if size[1] == 1 else f" ({size[0]}x{size[1]})"
    return f"the header claims an image too large to decode{claimed}; at most {MAX_PIXELS} pixels are allowed"


def decode(raw: bytes) -> tuple[np.ndarray | None, str | None, str | None]:
    """(BGR uint8 image, conversion, reason it cannot be used) from an image file's bytes."""
    if not raw:
        return None, None, "empty file (0 bytes)"
    size = header_size(raw)
    if size is None:
        return None, None, UNREADABLE_FORMAT
    if reason := too_large(size):
        return None, None, reason
    try:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:  # OpenCV's own size limit, or a failed allocation
        return None, None, f"OpenCV cannot decode it ({str(err).strip().splitlines()[-1]})"
    if image is None or image.size == 0:
        return None, None, UNREADABLE_FORMAT
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


def decode_checked(raw: bytes) -> tuple[np.ndarray | None, str | None]:
    """(BGR image, None) or (None, reason): decode() without the conversion note."""
    image, _, reason = decode(raw)
    return image, reason


def to_square(image: np.ndarray, size: int) -> tuple[np.ndarray, bool]:
    """Resize to size x size (area filter down, cubic up); say whether it was upscaled."""
    upscaled = max(image.shape[:2]) < size
    interpolation = cv2.INTER_CUBIC if upscaled else cv2.INTER_AREA
    return cv2.resize(image, (size, size), interpolation=interpolation), upscaled


# CLAHE on the luminance: a clip limit of 2 (OpenCV's usual) lifts dark and faded signs without
# turning flat backgrounds into noise; 4 x 4 tiles are ~9 px on a 36 px square, about a sign's stroke
# pattern. Measured on real GTSRB: docs/accuracy.md ("Round 3").
CLAHE_CLIP_LIMIT = 2.0
CLAHE_TILES = (4, 4)


def equalize(image_bgr: np.ndarray, mode: str) -> np.ndarray:
    """The image with the model's contrast equalisation (Preprocessing.equalize) applied; "none" returns it."""
    if mode == "none":
        return image_bgr
    if mode != "clahe":
        raise ValueError(f"equalize={mode!r} is unknown")
    lab = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def to_input(image_bgr: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """One image as the network input (3, S, S) float32: squared as prepare packs, then evaluated.

    Squares to stored_size as the prepare step does, applies the model's contrast equalisation as
    every reader of packed splits does, then takes ImageRecordIter's centre crop (offset
    (side - S) // 2) and normalises RGB with the model's mean and std.
    """
    side = stored_size(prep.image_size)
    if image_bgr.shape[:2] != (side, side):
        image_bgr, _ = to_square(image_bgr, side)
    image_bgr = equalize(image_bgr, prep.equalize)
    top = left = (side - prep.image_size) // 2
    crop = image_bgr[top : top + prep.image_size, left : left + prep.image_size, ::-1].astype(np.float32)
    crop = (crop - np.asarray(prep.mean_rgb, np.float32)) / np.asarray(prep.std_rgb, np.float32)
    return crop.transpose(2, 0, 1)
