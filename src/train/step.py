"""The train step: parse -> check data -> build model -> resume -> fit -> export.

Its entry point is gtsrb.train.cli (`gtsrb-train`, `python -m gtsrb.train`, SageMaker's
/opt/ml/code/train.py); failures are StepErrors that the entry point reports.
"""

from __future__ import annotations

import atexit
import json
import logging
import tempfile
from pathlib import Path

import mxnet as mx

from gtsrb.common import contract, sagemaker_job
from gtsrb.common.failure import StepError
from gtsrb.common.preprocessing import Preprocessing
from gtsrb.train import checkpoint, devices, distributed, epoch_log, launcher, mixed_precision, pretrained
from gtsrb.train.checkpoint import TrainingState
from gtsrb.train.cluster import Cluster, is_worker
from gtsrb.train.combine import worker_split
from gtsrb.train.data import channel_split, check_batch_size, split_class_names, validate_split
from gtsrb.train.distributed import Workers
from gtsrb.train.ema import EMA_FILE, WeightAverage
from gtsrb.train.environment import Environment, parse_args
from gtsrb.train.export import export, export_in_fresh_process
from gtsrb.train.hyperparameters import Hyperparameters
from gtsrb.train.loop import Interrupted, Run, StopFlag, fit
from gtsrb.train.model import build_network, create_network
from gtsrb.train.optimizer import make_trainer

log = logging.getLogger("gtsrb.train")


def weights_file(env: Environment, hp: Hyperparameters) -> Path | None:
    """The pretrained weights to start from: the `pretrained` channel, the zoo cache, or none."""
    if env.pretrained is not None:
        found = sorted(env.pretrained.glob("*.params")) if env.pretrained.is_dir() else []
        if len(found) != 1:
            raise StepError(f"the `pretrained` channel {env.pretrained} must hold exactly one .params file, it holds {len(found)}.")
        return found[0]
    if hp.pretrained == "imagenet":
        return pretrained.imagenet_params_path(hp.model)
    return None


def checked_splits(env: Environment, prep: Preprocessing) -> tuple[contract.RecordFiles, contract.RecordFiles, int, list[str]]:
    """The checked train and validation channels, the train count and the class names (the data's, from prepare)."""
    train_files = channel_split(env.train, contract.TRAIN_CHANNEL)
    val_files = channel_split(env.validation, contract.VALIDATION_CHANNEL)
    class_names = split_class_names(train_files, val_files)
    train_count = validate_split(train_files, prep, len(class_names))
    validate_split(val_files, prep, len(class_names))
    return train_files, val_files, train_count, class_names


def training_split(train_files: contract.RecordFiles, val_files: contract.RecordFiles, train_count: int,
                   hp: Hyperparameters, workers: Workers) -> tuple[contract.RecordFiles, int]:
    """What this worker trains on (train + validation with fit_on_validation, rare classes repeated,
    every count-th record with several workers) and the count of the whole training sequence."""
    check_batch_size(train_count, hp.batch_size, train_files)  # a batch larger than the split
    if not (hp.fit_on_validation or hp.min_class_share or workers.count > 1):
        return train_files, train_count
    if hp.fit_on_validation:
        log.info("event=fit_on_validation note=val_acc_is_measured_on_training_data")
    parts = [train_files, val_files] if hp.fit_on_validation else [train_files]
    # a temp folder, not the checkpoint folder: SageMaker would upload it with the checkpoints;
    # removed when the process ends (a resume rebuilds it identically)
    scratch = tempfile.TemporaryDirectory(prefix="gtsrb-train-")
    atexit.register(scratch.cleanup)
    files, kept, total = worker_split(parts, Path(scratch.name), hp.min_class_share, (workers.rank, workers.count))
    if workers.count > 1:
        write_part_report(workers, kept, total)
    return files, total


def write_part_report(workers: Workers, positions: list[int], total: int) -> Path:
    """SM_OUTPUT_DATA_DIR/records-HOST.json: which records of the training sequence this worker trains on
    (SageMaker uploads it with the job's output; the tests count the workers' records with it)."""
    folder = sagemaker_job.base_dir() / sagemaker_job.OUTPUT_DIR / "data"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"records-{workers.host or workers.rank}.json"
    path.write_text(json.dumps({"host": workers.host, "rank": workers.rank, "workers": workers.count,
                                "total": total, "positions": positions}))
    return path


def check_worker_batch(hp: Hyperparameters, workers: Workers, num_devices: int) -> None:
    """The global batch must split evenly over the workers, with an image for every device."""
    if hp.batch_size % workers.count or hp.batch_size // workers.count < num_devices:
        raise StepError(f"batch_size={hp.batch_size} cannot be split over {workers.count} instances with "
                        f"{num_devices} device(s) each; use a multiple of {workers.count * num_devices}.")


def prepare_run(env: Environment, hp: Hyperparameters) -> Run:
    """Check the data, fit the epochs to it, choose devices, build the network and the optimiser."""
    prep = Preprocessing.for_hyperparameters(hp.to_dict())
    train_files, val_files, train_count, class_names = checked_splits(env, prep)
    ctx = devices.training_contexts(env.num_gpus, hp.devices)
    distributed.check_kvstore(hp.kvstore, ctx)
    workers = distributed.connect(len(ctx), hp.peer_timeout)  # one host: nothing to connect
    hp = hp.scaled_to(len(ctx), workers.count)
    check_worker_batch(hp, workers, len(ctx))
    channels_key = checkpoint.data_key(train_files, val_files)  # the same on every host
    train_files, train_count = training_split(train_files, val_files, train_count, hp, workers)
    # one host: the key of what it trains on, as before; several: of the channels (the parts differ per host)
    key = channels_key if workers.count > 1 else checkpoint.data_key(train_files, val_files)
    fitted = hp.fitted_to(train_count)
    if fitted.epochs != hp.epochs:
        log.info("event=epochs_fitted epochs=%d train_records=%d max_train_images=%d", fitted.epochs, train_count, hp.max_train_images)
    hp = fitted
    create_network(hp.model, len(class_names))  # fail on an unknown model before touching GPUs or weights
    weights = weights_file(env, hp)
    amp_dtype = mixed_precision.init(ctx) if hp.amp else "off"  # before the network is built: it patches the operators
    mx.random.seed(hp.seed)  # the initialisation of a fresh run; epochs reseed from (seed, epoch)
    net = build_network(hp.model, len(class_names), hp.image_size, ctx, weights, hp.head_lr_mult, hp.input_norm)
    trainer = make_trainer(net, hp, ctx, hp.amp, workers.kv or distributed.kvstore_type(hp.kvstore, len(ctx), False))
    workers.use_trainer(trainer)
    log.info("event=start model=%s train_records=%d classes=%d devices=%s amp=%s weights=%s batch=%d lr=%.5g workers=%d",
             hp.model, train_count, len(class_names), ",".join(str(x) for x in ctx), amp_dtype, weights, hp.batch_size,
             hp.lr, workers.count)
    ema = WeightAverage(net, hp.ema_decay) if hp.ema_decay else None
    return Run(net, trainer, ctx, train_files, val_files, prep, hp, train_count, env.checkpoint_dir, class_names,
               amp=hp.amp, workers=workers, data_key=key, ema=ema)


def ensure_writable(folder: Path, flag: str) -> None:
    """Create `folder` now, so that a bad output path fails before training, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".write-test").touch()
        (folder / ".write-test").unlink()
    except OSError as err:
        raise StepError(f"cannot write to {folder} ({err.strerror}); pass {flag} DIR when running by hand.") from err


# Hyperparameters that may change between a run and its resumption.
RESUMABLE_CHANGES = frozenset({"log_interval", "devices", "kvstore", "peer_timeout"})


def resume_or_start(run: Run) -> TrainingState:
    """Continue from the newest complete checkpoint of this run that loads, else a fresh state.

    A damaged checkpoint is skipped with its reason (an older one is tried); one made on other
    training data starts a fresh run; one made with other hyperparameters is refused.
    """
    fresh = TrainingState(seed=run.hp.seed, hyperparameters=run.hp.to_dict(),
                          data_key=run.data_key or checkpoint.data_key(run.train_files, run.val_files))
    for path in checkpoint.complete(run.checkpoint_dir):
        try:
            saved = checkpoint.load_state(path)
        except StepError as err:
            skip(path, err)
            continue
        if saved.data_key != fresh.data_key:
            log.warning("event=fresh_start checkpoint=%s reason=other_data: it was made on other training data, so "
                        "training starts from scratch (the old checkpoints are deleted at the first new one)", path)
            return fresh
        check_hyperparameters(run.hp, saved, path)
        try:
            state = checkpoint.restore(path, run.net, run.trainer, run.ema)
        except StepError as err:
            skip(path, err)
            continue
        log.info("event=resume checkpoint=%s epochs_done=%d batch=%d", path, state.epochs_done, state.step_in_epoch)
        return state
    return fresh


def skip(path: Path, err: StepError) -> None:
    """Say which checkpoint is not used and why (S3 sync or a kill may leave a damaged one)."""
    log.warning("event=checkpoint_skipped checkpoint=%s reason=%s; trying an older one", path, str(err).replace("\n", " "))


def check_hyperparameters(hp: Hyperparameters, saved: TrainingState, path: Path) -> None:
    """Refuse to resume a checkpoint written with other hyperparameters."""
    changed = sorted(k for k, v in hp.to_dict().items() if saved.hyperparameters.get(k) != v and k not in RESUMABLE_CHANGES)
    if changed:
        raise StepError(
            f"{path} was written with other hyperparameters ({', '.join(changed)}); use the same "
            f"values to resume, or an empty checkpoint folder to start over."
        )


def save_best(run: Run, state: TrainingState, model_dir: Path) -> None:
    """Export the best epoch's weights (their average with ema_decay) with everything evaluation and serving need."""
    params = run.checkpoint_dir / state.best_checkpoint / (EMA_FILE if run.ema is not None else checkpoint.NET_FILE)
    save = export_in_fresh_process if run.amp else export
    save(params, model_dir, run.hp.to_dict(), state.history, run.class_names)
    log.info("event=saved model_dir=%s best_val_acc=%.4f best=%s", model_dir, state.best_val_acc, state.best_checkpoint)


def train(argv: list[str]) -> None:
    """The whole step for an argument list (SageMaker's `--key value` hyperparameters and flags)."""
    env, raw = parse_args(argv)
    hp = Hyperparameters.from_mapping(raw)
    ensure_writable(env.model_dir, "--model-dir")
    ensure_writable(env.checkpoint_dir, "--checkpoint-dir")
    log.info("%s", epoch_log.hyperparameters_line(hp.to_dict()))
    stop = StopFlag()
    previous = stop.install()  # first: a SIGTERM while connecting or resuming stops the run after its first batches
    try:
        run = prepare_run(env, hp)
        run.stop = stop
        state = resume_or_start(run)
        distributed.check_same_checkpoint(run.workers, state.epochs_done, state.step_in_epoch)
        state = fit(run, state)
    except Interrupted as stopped:
        log.info("event=stopped reason=%s checkpoint=%s note=run_again_to_resume", stop.reason or "another_host", stopped)
        return
    finally:
        StopFlag.uninstall(previous)
    if run.workers.is_first:  # one host speaks: the others' weights are the same
        save_best(run, state, env.model_dir)


def launch_or_train(argv: list[str]) -> None:
    """One host: train here. Several: this process is the host's launcher (gtsrb.train.launcher),
    unless it is the worker a launcher started."""
    cluster = Cluster.from_environment()
    if not cluster.is_distributed or is_worker():
        train(argv)
        return
    _, raw = parse_args(argv)
    hp = Hyperparameters.from_mapping(raw)  # a bad value fails here, before any role starts
    launcher.run(cluster, argv, hp.peer_timeout)
