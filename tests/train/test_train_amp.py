"""The AMP code path (loss scaling, AMP trainer, float32 export from a fresh process), run on CPU
with bfloat16 because float16 AMP needs a GPU."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from gtsrb.common.model_io import load_model
from testkit.train import run_json_script


@pytest.mark.slow
def test_amp_path_trains_and_exports_plain_float32(tmp_path: Path, channels: dict[str, Path]) -> None:
    result = run_json_script("amp_cpu_run.py", channels, tmp_path, timeout=300)
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert max(h["val_acc"] for h in result["history"]) > 0.5  # chance is 1/6
    symbol = (tmp_path / "model" / "model-symbol.json").read_text()
    assert "amp_cast" not in symbol and "amp_multicast" not in symbol
    model = load_model(tmp_path / "model", mx.cpu())
    assert model.net(mx.nd.zeros((1, 3, 32, 32))).dtype == np.float32
