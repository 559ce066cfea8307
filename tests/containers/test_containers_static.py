"""Static checks of the image definition: lint, base image, pins (fast; part of `make test`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from testkit.containers import CONTAINERS, REPO, run

DOCKERFILE = CONTAINERS / "Dockerfile"


def pins(path: Path) -> dict[str, str]:
    """name -> version of a fully pinned requirements file (fails on any unpinned line)."""
    result = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"{path.name}: {line!r} is not pinned with =="
            result[name.lower().replace("_", "-")] = version
    return result


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = run([str(hadolint), "--config", str(CONTAINERS / ".hadolint.yaml"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hadolint_ignore_is_justified() -> None:
    config = (CONTAINERS / ".hadolint.yaml").read_text().splitlines()
    for i, line in enumerate(config):
        if re.match(r"\s*- DL\d+", line):
            assert config[i - 1].strip().startswith("#"), f"ignored rule {line.strip()} has no reason above it"
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# hadolint ignore"):
            assert lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], "inline ignore without a reason"


def test_base_image_is_a_dated_bookworm_tag_maybe_pinned() -> None:
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    assert re.fullmatch(r"debian:bookworm-20\d{6}-slim(@sha256:[0-9a-f]{64})?", base), base


def test_image_requirements_are_pinned_and_match_the_tested_stack() -> None:
    cpu, gpu = pins(CONTAINERS / "requirements-cpu.txt"), pins(CONTAINERS / "requirements-gpu.txt")
    dev = pins(REPO / "requirements" / "dev.txt")
    # The variants differ only in the MXNet build and the CUDA runtime wheels.
    assert set(gpu) - set(cpu) == {"mxnet-cu112"} | {n for n in gpu if n.startswith("nvidia-")}
    assert set(cpu) - set(gpu) == {"mxnet"}
    assert gpu["mxnet-cu112"] == cpu["mxnet"] == "1.9.1"
    for name, version in cpu.items():  # the images run what the test suite ran
        if name in dev:
            assert dev[name] == version, f"{name}: image pins {version}, requirements/dev.txt pins {dev[name]}"


def test_no_requirements_txt_reaches_the_code_dir() -> None:
    # The toolkit pip-installs /opt/ml/code/requirements.txt at job start (no network there).
    text = DOCKERFILE.read_text()
    assert "/opt/ml/code/requirements" not in text
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :] and not any(rule.startswith("!") and "requirements" in rule for rule in ignore)
