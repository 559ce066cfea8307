"""One worker of a 2-host job, or the one-host reference on 2 CPU contexts: `python dist_worker_run.py CHANNELS OUT DEVICES`.

Builds the run as the train step does (gtsrb.train.step.prepare_run: with DMLC_ROLE=worker it
connects to ps-lite and takes its part of the records), then trains a few steps on a fixed batch
(a worker on its half of it: the rows a 2-device host gives each device), averages the BatchNorm
statistics as finish_epoch does, and checks a resume point. Writes OUT/HOST.params (the weights
before and after the average) and prints a JSON report: what the run trains on and how.
Dropout is off: its masks are drawn per device and process, and this compares the arithmetic.
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from gtsrb.common.failure import StepError
from gtsrb.train import distributed, model
from gtsrb.train.combine import read_records
from gtsrb.train.environment import Environment
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import sync_running_stats, train_batch
from gtsrb.train.step import prepare_run

STEPS, BATCH, LR = 3, 16, 0.05

ch, out, devices = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
host = os.environ.get("SM_CURRENT_HOST", "one-host")
model.CNN_DROPOUT = 0.0
hp = Hyperparameters.from_mapping({"preset": "cpu", "image_size": "32", "epochs": "3", "batch_size": str(BATCH), "lr": str(LR),
                                   "warmup_epochs": "0", "fit_on_validation": "False", "min_class_share": "0", "max_train_images": "480",
                                   "peer_timeout": "60", "devices": devices})
env = Environment(ch / "train", ch / "validation", None, out / f"model-{host}", out / f"ckpt-{host}", 0)
run = prepare_run(env, hp)
workers = run.workers
distributed.check_same_checkpoint(workers, 0, 0)  # as gtsrb.train.step.train does before fit: the same everywhere

# what this worker's iterator reads: every record of its training file
records = sorted(hashlib.sha1(record).hexdigest() for _, record in read_records([run.train_files]))

# a few updates on fixed batches: worker r gets the rows device r gets on one host with 2 devices
rng = np.random.RandomState(0)
loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=False)
rows = slice(workers.rank * BATCH // workers.count, (workers.rank + 1) * BATCH // workers.count)
for _ in range(STEPS):
    data, label = rng.normal(0, 1, (BATCH, 3, 32, 32)).astype("float32"), rng.randint(0, 6, BATCH).astype("float32")
    run.trainer.set_learning_rate(LR)
    train_batch(run, mx.io.DataBatch([mx.nd.array(data[rows])], [mx.nd.array(label[rows])]), loss_fn)
mx.nd.waitall()
sync_running_stats(run.net)
before = {f"before:{k}": v.data(run.ctx[0]).copy() for k, v in run.net.collect_params().items()}
workers.average_running_stats(run.net, run.trainer)
after = {f"after:{k}": v.data(run.ctx[0]) for k, v in run.net.collect_params().items()}
mx.nd.save(str(out / f"{host}.params"), {**before, **after})

# another resume point on one host: a sentence on every host
try:
    distributed.check_same_checkpoint(workers, 2, 3 + workers.rank)
    mismatch = ""
except StepError as err:
    mismatch = str(err)
kvstore = run.trainer._kvstore.type  # before leave(): it frees the dist kvstore
workers.leave()
print(json.dumps({"host": host, "rank": workers.rank, "workers": workers.count, "kvstore": kvstore,
                  "epochs": run.hp.epochs, "batch_size": run.hp.batch_size, "worker_batch": run.worker_batch,
                  "steps_per_epoch": run.steps_per_epoch, "train_count": run.train_count,
                  "records": records, "mismatch": mismatch}))
