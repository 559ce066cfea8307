"""containers/train_local.py: the /opt/ml tree it writes is what the sagemaker-training toolkit reads."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from testkit.containers import load_script, run

train_local = load_script("train_local")


def toolkit_view(root: Path) -> dict:
    """What the real toolkit's Environment makes of a tree (SAGEMAKER_BASE_DIR is read at import)."""
    code = ("import json; from sagemaker_training import environment as e; env = e.Environment();"
            "print(json.dumps({'hosts': env.hosts, 'current_host': env.current_host,"
            " 'channels': env.channel_input_dirs, 'hps': env.hyperparameters, 'model_dir': env.model_dir}))")
    result = run([sys.executable, "-c", code], env={**os.environ, "SAGEMAKER_BASE_DIR": str(root)})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_config_is_read_by_the_toolkit_as_a_one_host_job(tmp_path: Path) -> None:
    channels = {"train": tmp_path / "t", "validation": tmp_path / "v"}
    train_local.write_config(tmp_path / "ml", channels, {"preset": "cpu", "epochs": "1"})
    view = toolkit_view(tmp_path / "ml")
    assert view["hosts"] == ["algo-1"] and view["current_host"] == "algo-1"
    assert view["hps"] == {"preset": "cpu", "epochs": 1}  # the toolkit parses JSON-looking values
    assert {k: Path(v).name for k, v in view["channels"].items()} == {"train": "train", "validation": "validation"}
    assert all((tmp_path / "ml" / d).is_dir() for d in ("model", "output", "checkpoints"))


def test_docker_command_mounts_like_sagemaker(tmp_path: Path) -> None:
    cmd = train_local.docker_command("docker", "img:1", tmp_path, {"train": Path("/data/t")}, "none")
    assert cmd[:2] == ["docker", "run"] and cmd[-2:] == ["img:1", "train"]
    assert "--gpus" not in cmd and cmd[cmd.index("--network") + 1] == "none"
    mounts = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-v"]
    assert "/data/t:/opt/ml/input/data/train:ro" in mounts
    assert f"{tmp_path}/checkpoints:/opt/ml/checkpoints" in mounts
    gpu = train_local.docker_command("docker", "img:1", tmp_path, {}, "all")
    assert gpu[gpu.index("--gpus") + 1] == "all"


def test_missing_channel_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = run([sys.executable, str(train_local.__file__), "--image", "x", "--root", str(tmp_path),
                  "--channel", f"train={tmp_path / 'nope'}"])
    assert result.returncode != 0 and "channel train" in result.stderr and "not a folder" in result.stderr
