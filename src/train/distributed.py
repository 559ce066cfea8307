"""The worker's side of a multi-host job: the dist kvstore, agreement between workers, its data part.

With several hosts every worker runs the same loop on its own part of the training records and
the kvstore sums the gradients of all workers on the ps-lite servers (`dist_sync`; across GPUs
`dist_device_sync`). Whatever must be equal on every worker is agreed through the same kvstore,
as sums of small arrays:
- a stop (SIGTERM on any host, early stopping decided by the first host): every worker stops
  after the same batch, so the checkpoint the first host writes is every worker's state;
- the checkpoint each worker resumed from (a different one would train different weights);
- BatchNorm running statistics, averaged over workers before validation, checkpoint and export.
A stopping or finished worker leaves ps-lite explicitly, at the same point on every worker (`leave`).
With one host `Workers.single()` does nothing and costs nothing.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.base import _LIB, check_call

from gtsrb.common import sagemaker_job
from gtsrb.common.failure import StepError, write_failure
from gtsrb.train import cluster

log = logging.getLogger(__name__)

# the agreements' kvstore keys, after the Trainer's 0..len(params)-1 (ps-lite checks key ranges)
STOP_KEY, EPOCH_KEY, EARLY_STOP_KEY, RESUME_KEY, DRAIN_KEY = 0, 1, 2, 3, 4


@dataclass
class Workers:
    """This worker's place among all workers and the kvstore they share (None with one host)."""

    kv: mx.kvstore.KVStore | None = None
    rank: int = 0  # this host's place in the job's sorted host list (ps-lite's own rank follows connection order)
    count: int = 1
    host: str = ""
    first: bool = True  # the job's first host (algo-1), whatever its rank: it speaks
    key_base: int = 0  # set to the Trainer's parameter count (use_trainer)
    _initialised: set[int] = field(default_factory=set)
    _pending_stop: mx.nd.NDArray | None = None

    @classmethod
    def single(cls) -> Workers:
        return cls()

    def use_trainer(self, trainer: gluon.Trainer) -> None:
        """Place the agreements' keys after the Trainer's parameter keys, and give every parameter its
        kvstore key now, before the first forward pass, with the first worker's values on every worker.

        The Trainer would do it lazily inside its first step, where the pull of the initial values and
        the push of the first gradients have no order between them in MXNet's engine: a worker could
        read the first gradient sum as its weights. Here the forward pass reads the weights, so it waits
        for the pull, and the gradients come after it. The inits themselves are waited for (_settled_init).
        """
        self.key_base = len(trainer._params)
        if self.kv is None:
            return
        trainer._init_kvstore()  # the Trainer adopts this kvstore
        params = [param for param in trainer._params_to_init if not param._deferred_init]  # built by a forward pass: all
        keys = [trainer._param2idx[param.name] for param in params]
        # plain copies: after a forward pass, MXNet's CPU (oneDNN) layout of a conv weight cannot be pushed
        # ("We can't generate TBlob for MKLDNN data"), and the failed push raised nowhere (see _settled_init)
        self._settled_init(keys, [mx.nd.array(param.list_data()[0].asnumpy(), dtype=param.dtype) for param in params])
        for key, param in zip(keys, params, strict=True):
            self.kv.pull(key, param.list_data(), priority=-key)  # the first worker's values
        trainer._params_to_init = [param for param in trainer._params_to_init if param._deferred_init]

    def _settled_init(self, keys: list[int], values: list[mx.nd.NDArray]) -> None:
        """kv.init, then wait until the servers hold every value before any worker goes on.

        The Trainer's own init (at its first step) let another worker's first push or pull reach a server
        before the first worker's value: a server dying with "init N first", or a gradient taken as the
        initial value and the weights summed into a later round (found by tests/train/test_train_dist_workers.py:
        the second update 20-70x too large, about one run in four). Two causes, both closed here: the
        init push of a conv weight in oneDNN layout failed inside MXNet's engine and was raised nowhere
        (use_trainer pushes plain copies; a failure now raises at waitall), and MXNet 1.9.1 does not wait
        for that push before the barrier inside init. Waiting for every operation (the push is one) and
        meeting once more makes every value reach the servers before any worker goes on.
        """
        self.kv.init(keys, values)
        mx.nd.waitall()
        self.kv._barrier()

    @property
    def seed_offset(self) -> int:
        """Added to the seed of this worker's shuffle, augmentation and dropout: with one seed every
        worker would draw the same crops and dropout masks for its i-th image (0 with one host)."""
        return self.rank  # seeds stay 32-bit: the seed hyperparameter's cap leaves 1000 spare

    @property
    def is_first(self) -> bool:
        """The worker that speaks: validation, metric lines, checkpoints, the model."""
        return self.first

    def all_sum(self, key: int, values: list[float]) -> np.ndarray:
        """The sum of `values` over every worker (every worker must call it, in the same order)."""
        if self.kv is None:
            return np.asarray(values, dtype=np.float64)
        array = mx.nd.array(values)
        self._init(key, len(values))
        self.kv.pushpull(self.key_base + key, array, out=array)
        return array.asnumpy()

    def _init(self, key: int, size: int) -> None:
        if key not in self._initialised:
            self._settled_init([self.key_base + key], [mx.nd.zeros(size)])  # rank 0 sets it; every worker waits
            self._initialised.add(key)

    def stop_agreed(self, requested: bool) -> bool:
        """True on every worker at the same batch once any worker asked to stop.

        One batch late: this batch's flag travels with its gradients and is read at the next
        batch, so waiting for it never empties the queue of batches in flight. One array for
        every round: MXNet orders the pull of round r before the push of round r+1 only for the
        same array (with a new array per round a fast worker's next push can overtake a pull, and
        the pull would read the next round's sum).
        """
        if self.kv is None:
            return requested
        self._init(STOP_KEY, 1)
        agreed = False
        if self._pending_stop is None:
            self._pending_stop = mx.nd.zeros(1)
        else:
            agreed = float(self._pending_stop.asscalar()) > 0  # the sum of the last round
        self._pending_stop[:] = float(requested)
        self.kv.pushpull(self.key_base + STOP_KEY, self._pending_stop, out=self._pending_stop)
        return agreed

    def leave(self) -> None:
        """Before a stop or the end: finish every pending push and pull, meet the other workers
        once more, and leave ps-lite (a barrier of every worker, then the servers are told to stop).

        All of it now, on every worker at the same point. A worker that leaves with its last round
        in flight can leave another waiting; and MXNet leaves ps-lite in the KVStore's destructor,
        which Python runs when its garbage collector reaches the Trainer's reference cycle: at
        another moment on each host, or only during the interpreter's shutdown. One worker then
        waited at that barrier for another that was gone (seen here as a stop that never ended, or
        a host that did not finish within peer_timeout).
        """
        if self.kv is None:
            return
        mx.nd.waitall()
        self.all_sum(DRAIN_KEY, [1.0])
        kv, self.kv = self.kv, None
        check_call(_LIB.MXKVStoreFree(kv.handle))
        kv.handle = None  # its destructor has run: __del__ now frees nothing

    def end_epoch(self) -> None:
        """Read the flag in flight, so that the next epoch starts with none (every worker ends its
        epoch at the same batch; the last batch's flag is agreed in finish_epoch instead)."""
        if self._pending_stop is not None:
            self._pending_stop.wait_to_read()
        self._pending_stop = None

    def average_running_stats(self, net: gluon.HybridBlock, trainer: gluon.Trainer) -> None:
        """BatchNorm running mean/var: the mean over every worker (each device already holds its
        worker's mean). Uses the Trainer's own kvstore key of each statistic, which nothing else pushes."""
        if self.kv is None:
            return
        for param in net.collect_params().values():
            if param.grad_req == "null":
                arrays = param.list_data()
                self.kv.pushpull(trainer._param2idx[param.name], arrays, out=arrays)
                for array in arrays:
                    array /= self.count * len(arrays)


def kvstore_type(choice: str, num_devices: int, distributed: bool) -> str:
    """The kvstore for the `kvstore` hyperparameter (auto|device|nccl), the devices and the hosts.

    One device, one host: `local` (MXNet then uses none). Several devices: `device` sums on the
    devices (GPU peer-to-peer), `nccl` through NVIDIA's library (GPUs only). Several hosts:
    `dist_sync` with one device, `dist_device_sync` (sums on the devices first) with several.
    """
    if choice == "nccl" and distributed:
        raise StepError("hyperparameter kvstore='nccl' works on one host only (MXNet 1.9.1's dist kvstore is "
                        "ps-lite); use kvstore=auto or device with several instances.")
    if distributed:
        return "dist_device_sync" if num_devices > 1 else "dist_sync"
    if num_devices == 1:
        return "local"
    return "nccl" if choice == "nccl" else "device"


def check_kvstore(choice: str, ctx: list[mx.Context]) -> None:
    """kvstore=nccl needs GPUs: say so before MXNet fails deep inside."""
    if choice == "nccl" and any(c.device_type != "gpu" for c in ctx):
        raise StepError("hyperparameter kvstore='nccl' needs GPUs (NCCL cannot sum on the CPU); use kvstore=device "
                        "or auto with devices=cpu:N.")


def connect(num_devices: int, peer_timeout: float) -> Workers:
    """In a multi-host job's worker: create the dist kvstore (all hosts must join within
    `peer_timeout` seconds, else the job fails); elsewhere Workers.single()."""
    if not cluster.is_worker():
        return Workers.single()
    kind = kvstore_type("auto", num_devices, distributed=True)
    job = cluster.Cluster.from_environment()
    host = job.current
    # twice the watch's bound: a host that never came is named by the watch first; this catches
    # ps-lite alone failing to come together (blocked ports) while every host is there
    timer = threading.Timer(2 * peer_timeout, _never_connected, args=(2 * peer_timeout, host))
    timer.daemon = True
    timer.start()
    try:
        kv = mx.kv.create(kind)  # blocks until the scheduler has seen every server and worker
    finally:
        timer.cancel()
    rank = job.hosts.index(host)  # stable across restarts: the same data part and seeds after a resume
    log.info("event=kvstore type=%s host=%s rank=%d workers=%d", kind, host, rank, kv.num_workers)
    return Workers(kv, rank, kv.num_workers, host, job.is_leader)


def _never_connected(peer_timeout: float, host: str) -> None:
    """The parameter server never came together: fail instead of waiting forever inside ps-lite."""
    sentence = (f"the parameter server's scheduler, servers and workers did not all connect within "
                f"{peer_timeout:g} s (2 x peer_timeout; seen from host {host}); is the port range open between the instances?")
    write_failure(sentence, sagemaker_job.TRAINING_FAILURE_FILE)
    log.error("%s", sentence)
    os._exit(1)  # the main thread is blocked inside ps-lite: nothing else can end it


def check_same_checkpoint(workers: Workers, epochs_done: int, step: int) -> None:
    """Every worker must resume from the same place (SageMaker gives every host the same checkpoint prefix)."""
    if workers.kv is None:
        return
    total = workers.all_sum(RESUME_KEY, [float(epochs_done), float(step)])
    if not np.allclose(total, [epochs_done * workers.count, step * workers.count]):
        raise StepError(f"host {workers.host} resumes from epoch {epochs_done} batch {step} but other hosts do not; "
                        "every host must see the same checkpoint folder (checkpoint_s3_uri).")
