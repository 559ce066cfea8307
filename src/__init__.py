"""GTSRB traffic-sign classification steps (the folder src/ is this package)."""

import os

# Largest image any step decodes (pixels). GTSRB photos are at most ~250x250; a header claiming
# more is a corrupt or hostile file (a 1 KB PPM can claim 100000x100000). OpenCV reads its own cap
# (default 2**30) once, when cv2 loads: set here, before any module of ours imports cv2, so it
# holds for every format OpenCV decodes (gtsrb.common.image_input also checks headers with Pillow).
MAX_IMAGE_PIXELS = 40_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

# One OpenCV thread in every process of ours (read when cv2 loads, like the cap above): the steps
# parallelise with processes (prepare's pool, the demo generator), and a child forked after OpenCV
# started its thread pool hangs as soon as it touches the pool (seen: a forked worker stuck in
# cv2.setNumThreads, joining threads it does not have). Our images are tens of pixels wide.
os.environ.setdefault("OPENCV_FOR_THREADS_NUM", "1")
