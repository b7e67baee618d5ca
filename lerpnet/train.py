"""Training and evaluation of the voxel autoencoder: `train_and_evaluate(config, workdir)`.

The loop and its side effects (data loading, logging, checkpoints, pictures; see lerpnet.workdir)
around the pure step functions of lerpnet.steps. Data-parallel over all local devices: the dataset
and state are replicated, each batch is split along a "data" mesh axis, and XLA inserts the
gradient all-reduce.
"""

from __future__ import annotations

import functools
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lerpnet import acai, augment, config_checks, losses, metrics, models, morph, pace, pieces, steps
from lerpnet.bitpack import pack_voxels
from lerpnet.data import dataset_config, load_dataset
from lerpnet.validation import Validation
from lerpnet.workdir import Workdir, WorkdirError, metric_values


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint stays."""


def default_config() -> ml_collections.ConfigDict:
    """Every field a training config has; configs/*.py override what they need."""
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0  # model initialisation, batch order and augmentation
    cfg.deterministic = False  # True: deterministic GPU reductions (slower); CPU runs are always reproducible
    cfg.data = dataset_config()
    cfg.model = models.model_config()
    cfg.loss = losses.loss_config()
    cfg.augment = augment.augment_config()
    cfg.acai = acai.acai_config()
    cfg.morph = morph.morph_config()
    cfg.pace = pace.pace_config()
    cfg.pieces = pieces.pieces_config()
    cfg.train = ml_collections.ConfigDict(
        dict(
            batch_size=32,  # global: split over all local devices
            num_steps=1000,
            optimizer="adamw",  # "adam" | "adamw" | "sgd" (momentum 0.9)
            learning_rate=1e-3,
            schedule="warmup_cosine",  # "constant" | "warmup_cosine" (linear warmup, cosine to 1% of peak)
            warmup_steps=50,
            weight_decay=1e-4,  # adamw only
            grad_clip=1.0,  # global-norm clip; 0 = off
            ema_decay=0.0,  # weight EMA evaluated and checkpointed beside the weights (e.g. 0.999); 0 = off
            latent_noise=0.0,  # Gaussian noise on the latent in training, in units of its batch std; 0 = off
            log_every=50,
            eval_every=250,
            checkpoint_every=250,
            max_checkpoints=3,
            eval_batch_size=64,
            num_reconstructions=8,  # validation shapes drawn at each evaluation
            progress=True,  # tqdm progress bar (steps/s, ETA)
        )
    )
    return cfg


def _pack(voxels: np.ndarray, chunk: int = 1024) -> np.ndarray:
    return np.concatenate([np.asarray(pack_voxels(voxels[i:i + chunk])) for i in range(0, len(voxels), chunk)])


# Fields a resumed run may change freely: they alter what is logged, kept or shown, not what is trained.
RESUMABLE_CHANGES = ("deterministic", "data.cache_dir", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.max_checkpoints", "train.eval_batch_size",
                     "train.num_reconstructions", "train.progress")
_SCHEDULE_FIELDS = ("train.num_steps", "train.learning_rate", "train.schedule", "train.warmup_steps")


def _refuse_changes(wd: Workdir, config: ml_collections.ConfigDict, allowed: bool) -> dict:
    """What `config` changes against the run in `wd`; raises WorkdirError, before anything is written,
    when that would alter a run that has a checkpoint and `allowed` is False."""
    defaults = config_checks.flatten(default_config())
    # a field added to lerpnet after the run was made, at its default, trains as the run did
    changes = {k: (old, new) for k, (old, new) in wd.changes(config, RESUMABLE_CHANGES).items()
               if not (old == "absent" and defaults.get(k, "absent") == new)}
    if changes and wd.latest_step() is not None and not allowed:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise WorkdirError(f"{wd.path} holds a run with another config ({listed}); resuming would mix two runs: "
                           "use another --workdir, or pass --resume_with_changes to continue it with the new values")
    return changes


def _log_changes(changes: dict, tc: ml_collections.ConfigDict, step: int) -> None:
    """Say what a resume with changes continues with, the learning-rate schedule above all."""
    logging.warning("resuming at step %d with a changed config: %s", step,
                    ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    if any(k in changes for k in _SCHEDULE_FIELDS):
        old = ml_collections.ConfigDict(tc.to_dict())
        for key, (value, _) in changes.items():
            if key in _SCHEDULE_FIELDS and value != "absent":
                old[key.split(".", 1)[1]] = value
        logging.warning("the learning-rate schedule is the new config's from step %d on: %.4g at step %d (the old "
                        "schedule had %.4g)", step, steps.learning_rate_schedule(tc)(step), step,
                        steps.learning_rate_schedule(old)(step))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       resume_with_changes: bool = False) -> dict[str, float]:
    """Train per `config` in `workdir`, resuming from its latest checkpoint; returns the last validation metrics.

    Before any work: the config is checked (ConfigError naming the field), and a workdir that another
    trainer holds, or whose run `config` would change (model, data, seed, batch, schedule: anything
    but RESUMABLE_CHANGES), is refused with WorkdirError unless `resume_with_changes`. A finished
    run is left as it is.
    """
    config_checks.check_config(config, default_config(), config_checks.TRAINING_RULES)
    steps.make_optimizer(config.train)  # a bad train.optimizer or train.schedule is named here
    tc = config.train
    if config.deterministic:
        # Takes effect only if JAX has not started its GPU backend yet (true under experiments.train).
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    mesh = jax.make_mesh((jax.local_device_count(),), ("data",), devices=jax.local_devices(),
                         axis_types=(jax.sharding.AxisType.Auto,))
    if tc.batch_size % mesh.size:
        raise config_checks.ConfigError(f"config field train.batch_size={tc.batch_size} must be a multiple of the "
                                        f"{mesh.size} local devices")
    if config.pace.weight and 2 * config.pace.pairs > tc.batch_size:
        raise config_checks.ConfigError(f"config field pace.pairs={config.pace.pairs} must be at most half of "
                                        f"train.batch_size={tc.batch_size} (each path runs to a partner in the batch)")
    replicated = NamedSharding(mesh, P())
    with Workdir(workdir, tc.max_checkpoints) as wd:
        changes = _refuse_changes(wd, config, resume_with_changes)
        like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                            jax.eval_shape(lambda: steps.create_state(config)))
        restored = wd.restore(like)  # onto this mesh, past corrupt checkpoints
        finished = wd.finished(tc.num_steps)
        if finished is not None:
            logging.info("the run in %s is finished (checkpoint and validation at step %d): nothing to do",
                         wd.path, wd.latest_step())
            return finished
        return _train(config, wd, mesh, changes, restored)


def _train(config: ml_collections.ConfigDict, wd: Workdir, mesh, changes: dict, restored) -> dict[str, float]:
    tc = config.train
    replicated, batch_sharding = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    dataset = load_dataset(config.data)
    if len(dataset.train_voxels) == 0 or len(dataset.val_voxels) == 0:
        raise ValueError(f"dataset {config.data.source!r} gave {len(dataset.train_voxels)} training and "
                         f"{len(dataset.val_voxels)} validation shapes; both must be non-empty")
    logging.info("data: %d training shapes, %d validation shapes (%s); %d device(s): %s",
                 len(dataset.train_voxels), len(dataset.val_voxels), config.data.source, mesh.size,
                 jax.local_devices()[0].device_kind)
    model = models.Autoencoder(config.model)
    train_packed = jax.device_put(_pack(dataset.train_voxels), replicated)
    validation = Validation(dataset.val_voxels, _pack(dataset.val_voxels), dataset.val_ids, model,
                            jax.jit(functools.partial(steps.eval_step, model=model, loss_cfg=config.loss)),
                            tc.eval_batch_size, tc.num_reconstructions, batch_sharding)
    schedule = steps.learning_rate_schedule(tc)

    state = jax.device_put(steps.create_state(config), replicated) if restored is None else restored
    start = int(state.step)
    records = wd.begin(start, config, fresh=restored is None and bool(changes))
    if restored is not None:
        logging.info("resumed from the checkpoint at step %d in %s", start, wd.path)
        if changes:
            _log_changes(changes, tc, start)
    elif changes:
        logging.info("no checkpoint yet in %s: starting afresh with the new config", wd.path)
    logging.info("seeds: model init, batch order and augmentation %d; data split %d", config.seed, config.data.seed)

    step_fn = jax.jit(functools.partial(steps.train_step, config=config), donate_argnums=0)
    params_finite = jax.jit(steps.all_finite)
    best = wd.best_of(records)

    def evaluate(step: int) -> dict[str, float]:
        """Everything an evaluation writes, its metrics record last: a logged evaluation is complete."""
        nonlocal best
        params = steps.evaluated_params(state)
        val, recon = validation(params)
        threshold, iou = metrics.choose_threshold(val)
        wd.save_reconstructions(step, validation.reconstruction_montage(recon))
        strips = validation.strip_montage(params, threshold)
        if strips is not None:
            wd.log_image(step, "val/interpolations", strips)
        if best is None or iou > best["val_iou"]:
            best = {"step": step, "threshold": threshold, "val_iou": iou}
            wd.save_best(step, state)
        wd.save_threshold(step, val, best)
        wd.save_curves(pending=[{"step": step, "split": "val", **val}])
        wd.log(step, "val", val)
        logging.info("step %d validation: IoU %.4f at the chosen threshold %.2f; %s", step, iou, threshold,
                     ", ".join(f"{k} {v:.4f}" for k, v in val.items() if not k.startswith(("iou@", "overlap@"))))
        return val

    def check_finite(step: int, loss: float) -> None:
        if not np.isfinite(loss) or not bool(params_finite(state.params)):
            last = wd.latest_step()
            raise NonFiniteLossError(
                f"training loss is {loss} at step {step}: the run diverged and was stopped. The last good "
                f"checkpoint ({'none' if last is None else f'step {last}'}) is kept in {wd.path / 'checkpoints'}. "
                f"Lower train.learning_rate (now {tc.learning_rate}) or set train.grad_clip, then rerun.")

    logged = [r for r in records if r["split"] == "val" and r["step"] == start]
    val = metric_values(logged[-1]) if logged else {}
    if not logged and (start % tc.eval_every == 0 or start >= tc.num_steps):
        val = evaluate(start)  # due at the checkpoint (or the start) and not logged yet
    bar = tqdm(total=tc.num_steps, initial=start, desc="train", unit="step", disable=not tc.progress,
               dynamic_ncols=True)
    tick, tick_step = time.perf_counter(), start
    try:
        for step in range(start, tc.num_steps):
            idx = steps.batch_indices(step, len(dataset.train_voxels), tc.batch_size, config.seed)
            state, out = step_fn(state, train_packed, jax.device_put(idx, batch_sharding))
            bar.update(1)
            done = step + 1
            if step % tc.log_every == 0 or done == tc.num_steps:
                out = jax.device_get(out)
                now = time.perf_counter()
                rate = (done - tick_step) / max(now - tick, 1e-9)
                tick, tick_step = now, done
                wd.log(step, "train", {**out, "learning_rate": schedule(step), "steps_per_s": rate,
                                       "shapes_per_s": rate * tc.batch_size})
                bar.set_postfix(loss=f"{float(out['loss']):.4f}")
                check_finite(step, float(out["loss"]))
            if done % tc.checkpoint_every == 0 or done == tc.num_steps:
                check_finite(step, float(out["loss"]))
                wd.save(done, state)
            if done % tc.eval_every == 0 or done == tc.num_steps:
                val = evaluate(done)
    finally:
        bar.close()
    threshold, iou = metrics.choose_threshold(val)
    wd.log_hparams(config, {"hparams/val_iou": iou, "hparams/threshold": threshold})
    return val
