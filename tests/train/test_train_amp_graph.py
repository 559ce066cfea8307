"""The float16 graph of the GPU default network, checked on CPU: after amp.init("float16") the traced
symbol casts convolutions and the dense head to float16, keeps BatchNorm's parameters and
statistics in float32, and computes the loss's log-softmax in float32 (tests/train/amp_fp16_graph.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.train.hyperparameters import Hyperparameters


def trace(model: str) -> dict:
    """The dtype report of amp_fp16_graph.py (its own process: amp.init patches MXNet for good)."""
    script = Path(__file__).with_name("amp_fp16_graph.py")
    done = subprocess.run([sys.executable, str(script), model], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_gpu_default_net_runs_convolutions_and_dense_in_float16_and_batchnorm_statistics_in_float32() -> None:
    report = trace(Hyperparameters().model)
    assert report["dtype"] == "float16" and report["amp_casts"] > 0
    conv, bn, dense = report["Convolution"], report["BatchNorm"], report["FullyConnected"]
    layers = conv["out:float16"]
    assert layers > 50 and conv == {"out:float16": layers, "data:float16": layers, "data_from:amp_cast": layers,
                                    "param_from:amp_cast": layers, "param:float16": layers}  # weights cast per step
    assert bn["out:float16"] == bn["data:float16"] == bn["data_from:Convolution"]
    assert bn["param:float32"] == bn["param_from:null"] == 4 * bn["out:float16"]  # gamma, beta, running mean and var
    assert dense == {"out:float16": 1, "data:float16": 1, "data_from:amp_cast": 1, "param_from:amp_cast": 2, "param:float16": 2}
    assert report["logits"] == "float16" and report["log_softmax"]["out:float32"] == 1 and report["loss"] == "float32"
