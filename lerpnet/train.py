"""Training and evaluation of the voxel autoencoder: `train_and_evaluate(config, workdir)`.

Pure, jitted step functions (`train_step`, `eval_step`) take the train state, the bit-packed dataset
(kept on the devices, 4 KiB a shape) and batch indices; their options (augmentation, latent noise,
weight EMA, the ACAI critic) are config fields, all off by default. `train_and_evaluate` does the
side effects (data loading, logging, checkpoints, pictures; see lerpnet.workdir). Data-parallel
over all local devices: the dataset and state are replicated, each batch is split along a "data"
mesh axis, and XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from lerpnet import acai, augment, config_checks, losses, metrics, models
from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.data import dataset_config, load_dataset
from lerpnet.validation import Validation
from lerpnet.workdir import Workdir, WorkdirError, metric_values

# Validation IoU is reported at each; `metrics.choose_threshold` picks the run's threshold from them.
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


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


def learning_rate_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1),
                                                  max(cfg.num_steps, cfg.warmup_steps + 1), 0.01 * cfg.learning_rate)
    raise ValueError(f"train.schedule must be 'constant' or 'warmup_cosine', got {cfg.schedule!r}")


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    lr = learning_rate_schedule(cfg)
    optimizers = {
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=cfg.weight_decay),
        "sgd": lambda: optax.sgd(lr, momentum=0.9),
    }
    if cfg.optimizer not in optimizers:
        raise ValueError(f"train.optimizer must be one of {tuple(optimizers)}, got {cfg.optimizer!r}")
    clip = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip > 0 else []
    return optax.chain(*clip, optimizers[cfg.optimizer]())


class TrainState(train_state.TrainState):
    """The autoencoder's step, parameters and optimizer state, and what the options add: the weight
    EMA (None when train.ema_decay = 0) and the ACAI critic's own state (None when acai.weight = 0)."""

    ema_params: Any = None
    critic: train_state.TrainState | None = None


def create_state(config: ml_collections.ConfigDict) -> TrainState:
    model = models.Autoencoder(config.model)
    key = jax.random.key(config.seed)
    params = jax.jit(model.init)(key, jnp.zeros((1, 32, 32, 32), jnp.float32))
    tx = make_optimizer(config.train)
    critic = acai.create_critic(config.acai, jax.random.fold_in(key, 1), tx) if config.acai.weight else None
    ema = jax.tree.map(jnp.copy, params) if config.train.ema_decay else None
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema, critic=critic)


def evaluated_params(state) -> Any:
    """The weights a run is evaluated, exported and interpolated with: the EMA when the run keeps one.

    `state` is a TrainState or a checkpoint restored as a dict (its "ema_params" is None or absent
    without EMA)."""
    get = state.get if isinstance(state, dict) else lambda name: getattr(state, name, None)
    ema = get("ema_params")
    return get("params") if ema is None else ema


def ema_update(ema, params, decay: float, step: jax.Array):
    """ema <- d ema + (1 - d) params with d = min(decay, (1 + step) / (10 + step)): the early steps
    average over fewer updates, so the random initialisation does not linger in short runs."""
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


@functools.lru_cache(maxsize=2)
def _epoch_order(num_shapes: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_shapes)


def batch_indices(step: int, num_shapes: int, batch_size: int, seed: int) -> np.ndarray:
    """The training batch of `step`: epochs of seeded permutations, a pure function of the step (resumable)."""
    epoch, offset = divmod(step * batch_size, num_shapes)
    parts, need = [], batch_size
    while need > 0:
        take = _epoch_order(num_shapes, seed, epoch)[offset: offset + need]
        parts.append(take)
        need -= len(take)
        epoch, offset = epoch + 1, 0
    return np.concatenate(parts).astype(np.int32)


def _noisy(z: jax.Array, scale: float, key: jax.Array) -> jax.Array:
    """z plus Gaussian noise of `scale` x each latent number's std over the batch (a constant)."""
    if not scale:
        return z
    return z + scale * jax.lax.stop_gradient(jnp.std(z, axis=0)) * jax.random.normal(key, z.shape, z.dtype)


def train_step(state: TrainState, packed: jax.Array, idx: jax.Array, *,
               config: ml_collections.ConfigDict) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on shapes `packed[idx]` with the options of `config` (the training config);
    the losses reported are before the update ("loss" is what is minimised)."""
    tc, acai_cfg = config.train, config.acai
    key = jax.random.fold_in(jax.random.key(config.seed), state.step)
    k_augment, k_dropout, k_noise, k_alpha = jax.random.split(key, 4)
    inputs, targets = augment.augment(unpack_voxels(packed[idx]), k_augment, config.augment)

    def loss_fn(params):
        z = state.apply_fn(params, inputs, True, method=models.Autoencoder.encode, rngs={"dropout": k_dropout})
        logits = state.apply_fn(params, _noisy(z, tc.latent_noise, k_noise), method=models.Autoencoder.decode)
        reconstruction = jnp.mean(losses.voxel_loss(logits, targets, config.loss))
        if not acai_cfg.weight:
            return reconstruction, {}
        mixed, alpha = acai.interpolants(z, k_alpha)
        interpolated = jax.nn.sigmoid(state.apply_fn(params, mixed, method=models.Autoencoder.decode))
        term = acai.autoencoder_term(state.critic.apply_fn(state.critic.params, interpolated))
        aux = {"reconstruction_loss": reconstruction, "acai_term": term}
        return reconstruction + acai_cfg.weight * term, (aux, interpolated, alpha, jax.nn.sigmoid(logits))

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new = state.apply_gradients(grads=grads)
    out = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    if tc.ema_decay:
        new = new.replace(ema_params=ema_update(state.ema_params, new.params, tc.ema_decay, state.step))
    if acai_cfg.weight:
        out_acai, interpolated, alpha, reconstructions = aux
        critic, out_acai["critic_loss"] = acai.critic_step(state.critic, interpolated, alpha, targets,
                                                           reconstructions, acai_cfg.gamma)
        new = new.replace(critic=critic)
        out.update(out_acai)
    return new, out


def eval_step(params, packed: jax.Array, mask: jax.Array, *, model: models.Autoencoder,
              loss_cfg) -> tuple[dict[str, jax.Array], jax.Array]:
    """Sums over the shapes where `mask` is set (IoU at THRESHOLDS, occupancies, loss, count), and the
    reconstructions (prob > 0.5)."""
    x = unpack_voxels(packed)
    logits = model.apply(params, x)
    prob = jax.nn.sigmoid(logits)
    w = mask.astype(jnp.float32)
    out = {f"iou@{t}": jnp.sum(w * metrics.iou(prob > t, x)) for t in THRESHOLDS}
    out["pred_occupancy"] = jnp.sum(w * metrics.occupancy(prob > 0.5))
    out["target_occupancy"] = jnp.sum(w * metrics.occupancy(x))
    out["loss"] = jnp.sum(w * losses.voxel_loss(logits, x, loss_cfg))
    out["count"] = jnp.sum(w)
    return out, prob > 0.5


def _pack(voxels: np.ndarray, chunk: int = 1024) -> np.ndarray:
    return np.concatenate([np.asarray(pack_voxels(voxels[i:i + chunk])) for i in range(0, len(voxels), chunk)])


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


# Fields a resumed run may change freely: they alter what is logged, kept or shown, not what is trained.
RESUMABLE_CHANGES = ("deterministic", "data.cache_dir", "train.log_every", "train.eval_every",
                     "train.checkpoint_every", "train.max_checkpoints", "train.eval_batch_size",
                     "train.num_reconstructions", "train.progress")
_SCHEDULE_FIELDS = ("train.num_steps", "train.learning_rate", "train.schedule", "train.warmup_steps")


def _refuse_changes(wd: Workdir, config: ml_collections.ConfigDict, allowed: bool) -> dict:
    """What `config` changes against the run in `wd`; raises WorkdirError, before anything is written,
    when that would alter a run that has a checkpoint and `allowed` is False."""
    changes = wd.changes(config, RESUMABLE_CHANGES)
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
                        "schedule had %.4g)", step, learning_rate_schedule(tc)(step), step,
                        learning_rate_schedule(old)(step))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       resume_with_changes: bool = False) -> dict[str, float]:
    """Train per `config` in `workdir`, resuming from its latest checkpoint; returns the last validation metrics.

    Before any work: the config is checked (ConfigError naming the field), and a workdir that another
    trainer holds, or whose run `config` would change (model, data, seed, batch, schedule: anything
    but RESUMABLE_CHANGES), is refused with WorkdirError unless `resume_with_changes`. A finished
    run is left as it is.
    """
    config_checks.check_config(config, default_config(), config_checks.TRAINING_RULES)
    make_optimizer(config.train)  # a bad train.optimizer or train.schedule is named here
    tc = config.train
    if config.deterministic:
        # Takes effect only if JAX has not started its GPU backend yet (true under experiments.train).
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    mesh = jax.make_mesh((jax.local_device_count(),), ("data",), devices=jax.local_devices(),
                         axis_types=(jax.sharding.AxisType.Auto,))
    if tc.batch_size % mesh.size:
        raise config_checks.ConfigError(f"config field train.batch_size={tc.batch_size} must be a multiple of the "
                                        f"{mesh.size} local devices")
    replicated = NamedSharding(mesh, P())
    with Workdir(workdir, tc.max_checkpoints) as wd:
        changes = _refuse_changes(wd, config, resume_with_changes)
        like = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                            jax.eval_shape(lambda: create_state(config)))
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
                            jax.jit(functools.partial(eval_step, model=model, loss_cfg=config.loss)),
                            tc.eval_batch_size, tc.num_reconstructions, batch_sharding)
    schedule = learning_rate_schedule(tc)

    state = jax.device_put(create_state(config), replicated) if restored is None else restored
    start = int(state.step)
    records = wd.begin(start, config, fresh=restored is None and bool(changes))
    if restored is not None:
        logging.info("resumed from the checkpoint at step %d in %s", start, wd.path)
        if changes:
            _log_changes(changes, tc, start)
    elif changes:
        logging.info("no checkpoint yet in %s: starting afresh with the new config", wd.path)
    logging.info("seeds: model init, batch order and augmentation %d; data split %d", config.seed, config.data.seed)

    step_fn = jax.jit(functools.partial(train_step, config=config), donate_argnums=0)
    params_finite = jax.jit(_all_finite)
    best = wd.best_of(records)

    def evaluate(step: int) -> dict[str, float]:
        """Everything an evaluation writes, its metrics record last: a logged evaluation is complete."""
        nonlocal best
        params = evaluated_params(state)
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
                     ", ".join(f"{k} {v:.4f}" for k, v in val.items() if not k.startswith("iou@")))
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
            idx = batch_indices(step, len(dataset.train_voxels), tc.batch_size, config.seed)
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
