"""Helpers of the image tests (a unique module name: every test folder has its own conftest)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
SAMPLE_TEST_IMAGES = REPO.parent / "shared" / "data" / "gtsrb-sample" / "GTSRB" / "Final_Test" / "Images"


def load_script(name: str) -> ModuleType:
    """Import containers/<name>.py (a script folder, not a package) as a module."""
    spec = importlib.util.spec_from_file_location(f"containers_{name}", CONTAINERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; the caller asserts on the result."""
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def docker_run(docker: str, image: str, command: list[str], mounts: dict[Path, str] | None = None,
               timeout: float = 900) -> subprocess.CompletedProcess:
    """`docker run --rm --network none` (as SageMaker's network isolation) with host:container mounts."""
    volumes = [arg for host, inside in (mounts or {}).items() for arg in ("-v", f"{host}:{inside}")]
    return run([docker, "run", "--rm", "--network", "none", *volumes, image, *command], timeout=timeout)


def real_image_files(count: int = 12) -> dict[str, bytes]:
    """File name -> bytes: GTSRB sample test images (PPM as users have them), else generated PNGs."""
    if SAMPLE_TEST_IMAGES.is_dir():
        return {p.name: p.read_bytes() for p in sorted(SAMPLE_TEST_IMAGES.glob("*.ppm"))[:count]}
    from testkit.evaluate import make_images
    from testkit.serve import png_bytes

    return {f"{i:05d}.png": png_bytes(image) for i, image in enumerate(make_images(count, seed=5)[0])}


def real_images(count: int = 12) -> list[bytes]:
    """The bytes of real_image_files(count), in name order."""
    return list(real_image_files(count).values())
