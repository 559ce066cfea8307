"""Step reuse for the local pipeline, like SageMaker step caching: a key per step, a done-marker.

A step's key hashes what determines its result: the step's code, its parameters and the
content of its inputs. When a step finishes, the runner writes `<WORK>/steps/<Step>.json` with
the key and a content hash of each output; the next run with the same key reuses the outputs
(as long as they still hold what was recorded: a size + mtime signature first, the content hash
when that differs), and downstream keys use those recorded output hashes, so a changed input
re-runs exactly the steps it feeds. Trees are walked through symlinked folders: a DATA folder
whose GTSRB/ is a symlink changes its hash when the link's target changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

MARKER_SUFFIX = ".json"
CHUNK = 1 << 20


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(path: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every file below `path`, sorted, following symlinked folders.

    pathlib's rglob does not descend into symlinked folders; a folder reached twice (a link
    loop) is walked once."""
    found, seen = [], set()
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in files:
            file = Path(root) / name
            if file.is_file():
                found.append((file.relative_to(path).as_posix(), file))
    return sorted(found)


def hash_tree(path: str | Path) -> str:
    """sha256 over every file below `path` (relative names and contents), or of a single file."""
    path = Path(path)
    if path.is_file():
        return hash_file(path)
    digest = hashlib.sha256()
    for name, file in tree_files(path):
        digest.update(name.encode() + b"\0" + hash_file(file).encode() + b"\n")
    return digest.hexdigest()


def stat_signature(path: str | Path) -> str:
    """A cheap fingerprint (names, sizes, mtimes) of a file or tree; equal means unchanged in practice."""
    path = Path(path)
    files = [(path.name, path)] if path.is_file() else tree_files(path)
    digest = hashlib.sha256()
    for name, file in files:
        stat = file.stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def hash_code(*modules: str) -> str:
    """sha256 of the .py files of the packages behind `modules` (a code change re-runs the step)."""
    digest = hashlib.sha256()
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"cannot find the step module {module}")
        root = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for file in files:
            digest.update(f"{module}:{file.relative_to(root.parent)}".encode() + hash_file(file).encode())
    return digest.hexdigest()


def step_key(name: str, **parts: object) -> str:
    """The cache key of step `name` from JSON-serialisable parts (code hash, parameters, input hashes)."""
    blob = json.dumps({"step": name, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Marker:
    """What a finished step leaves behind: its key, when and how long it ran, its output hashes."""

    step: str
    key: str
    seconds: float
    outputs: dict[str, str]  # output name -> content hash
    info: dict = field(default_factory=dict)  # step-specific facts for the summary
    finished: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))
    signatures: dict[str, str] = field(default_factory=dict)  # output name -> stat_signature when written


class StepCache:
    """Done-markers of one WORK folder."""

    def __init__(self, folder: str | Path, enabled: bool = True) -> None:
        self.folder = Path(folder)
        self.enabled = enabled

    def path(self, step: str) -> Path:
        """Where the marker of `step` lives."""
        return self.folder / f"{step}{MARKER_SUFFIX}"

    def lookup(self, step: str, key: str, outputs: dict[str, Path]) -> Marker | None:
        """The marker of a finished run of `step` with this key whose outputs still exist, else None."""
        marker = self.read(step)
        if not self.enabled or marker is None or marker.key != key:
            return None
        if set(marker.outputs) != set(outputs) or not all(p.exists() for p in outputs.values()):
            return None
        if not all(self.unchanged(marker, name, path) for name, path in outputs.items()):
            return None
        return marker

    @staticmethod
    def unchanged(marker: Marker, name: str, path: Path) -> bool:
        """Whether an output still holds what the marker recorded (an emptied model.tar.gz does not)."""
        recorded = marker.outputs[name]
        if not recorded:  # the step records no hash for this output (e.g. the registry database)
            return True
        if marker.signatures.get(name) == stat_signature(path):
            return True
        return hash_tree(path) == recorded  # touched, or a marker without signatures: compare contents

    def read(self, step: str) -> Marker | None:
        """The stored marker of `step` (any key), or None."""
        path = self.path(step)
        try:
            return Marker(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write(self, marker: Marker, outputs: dict[str, Path] | None = None) -> None:
        """Record a finished step (atomically: a marker is never half written), with the stat
        signatures of its hashed `outputs` so that a later lookup can verify them cheaply."""
        for name, path in (outputs or {}).items():
            if marker.outputs.get(name):
                marker.signatures[name] = stat_signature(path)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(marker.step).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(marker), indent=2) + "\n")
        tmp.replace(self.path(marker.step))

    def forget(self, step: str) -> None:
        """Drop the marker of `step` (before re-running it)."""
        self.path(step).unlink(missing_ok=True)
