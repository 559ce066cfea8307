"""Step reuse never hands on stale or corrupt outputs: symlinked data folders are hashed through,
and a reused step's outputs are verified against the recorded hashes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pipelines.local.cache import Marker, StepCache, hash_tree, step_key


def test_hash_tree_follows_a_symlinked_folder(tmp_path: Path) -> None:
    for name, content in (("old", "old model data"), ("new", "new model data")):
        (tmp_path / name / "Final_Training").mkdir(parents=True)
        (tmp_path / name / "Final_Training" / "a.ppm").write_text(content)
    data = tmp_path / "DATA"
    data.mkdir()
    (data / "GTSRB").symlink_to(tmp_path / "old", target_is_directory=True)
    before = hash_tree(data)
    (data / "GTSRB").unlink()
    (data / "GTSRB").symlink_to(tmp_path / "new", target_is_directory=True)
    assert hash_tree(data) != before  # swapping the link's target is a change of input


def test_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("1")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d", target_is_directory=True)
    assert hash_tree(tmp_path / "d")  # terminates


def finished_step(tmp_path: Path) -> tuple[StepCache, str, dict[str, Path]]:
    """A cache holding a finished step whose output is a model archive."""
    archive = tmp_path / "train" / "model.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"\x1f\x8b" + os.urandom(4000))
    cache, key, outputs = StepCache(tmp_path / "steps"), step_key("Train", code="c"), {"model": archive}
    cache.write(Marker("Train", key, 1.0, {"model": hash_tree(archive)}), outputs)
    return cache, key, outputs


def test_an_emptied_output_is_not_reused(tmp_path: Path) -> None:
    cache, key, outputs = finished_step(tmp_path)
    assert cache.lookup("Train", key, outputs) is not None
    outputs["model"].write_bytes(b"")  # the 0-byte model that used to be registered
    assert cache.lookup("Train", key, outputs) is None


def test_a_same_size_rewrite_is_not_reused(tmp_path: Path) -> None:
    cache, key, outputs = finished_step(tmp_path)
    stat = outputs["model"].stat()
    outputs["model"].write_bytes(b"\0" * stat.st_size)
    os.utime(outputs["model"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert cache.lookup("Train", key, outputs) is None


def test_a_touched_but_unchanged_output_is_reused(tmp_path: Path) -> None:
    cache, key, outputs = finished_step(tmp_path)
    later = time.time() + 60
    os.utime(outputs["model"], (later, later))  # signature differs, content hash still matches
    assert cache.lookup("Train", key, outputs) is not None
