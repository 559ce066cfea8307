"""Run the train loop's AMP path on CPU with bfloat16 (float16 AMP needs a GPU): `python amp_cpu_run.py CHANNELS OUT`.

A separate process because amp.init() patches MXNet's operators for the rest of the process.
(With float16, the patched graph carries amp_cast ops and cannot even run on CPU: "FP16 gemm on
cpu not implemented", which is why export.py exports from a fresh process.)
"""
import json
import sys
from pathlib import Path

import mxnet as mx

from gtsrb.common import contract
from gtsrb.common.classes import GTSRB_CLASS_NAMES, GTSRB_NUM_CLASSES
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.train import mixed_precision
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Run, fit
from gtsrb.train.model import build_network
from gtsrb.train.optimizer import make_trainer
from gtsrb.train.step import save_best

ch, out = Path(sys.argv[1]), Path(sys.argv[2])
hp = Hyperparameters.from_mapping({"preset": "cpu", "image_size": "32", "epochs": "2", "batch_size": "16", "lr": "0.05"})
ctx = [mx.cpu()]
mixed_precision.init(ctx)  # bfloat16 on CPU
net = build_network(hp.model, GTSRB_NUM_CLASSES, hp.image_size, ctx, None, hp.head_lr_mult)
trainer = make_trainer(net, hp, ctx, amp=True)
tf, vf = contract.record_files(ch / "train", "train"), contract.record_files(ch / "validation", "validation")
run = Run(net, trainer, ctx, tf, vf, Preprocessing(hp.image_size), hp, 240, out / "ckpt", list(GTSRB_CLASS_NAMES), amp=True)
state = fit(run, TrainingState(seed=hp.seed, hyperparameters=hp.to_dict()))
save_best(run, state, out / "model")
print(json.dumps({"history": state.history}))
