"""The pure, jittable pieces of training: the train state, its optimizer and schedule, the batch
order, and the step functions (`train_step`, `eval_step`) that lerpnet.train jits and loops over.

The steps take the train state, the bit-packed dataset (kept on the devices, 4 KiB a shape) and
batch indices; their options (augmentation, latent noise, weight EMA, the morph, pace and pieces terms,
the ACAI critic) are config fields, all off by default. Nothing here writes, logs or reads files.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from lerpnet import acai, augment, losses, metrics, models, morph, pace, pieces
from lerpnet.bitpack import unpack_voxels

# Validation IoU is reported at each; `metrics.choose_threshold` picks the run's threshold from them.
THRESHOLDS = tuple(round(0.2 + 0.05 * k, 2) for k in range(15))  # 0.2, 0.25, ..., 0.9


def learning_rate_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    """The learning rate of each step, from the train config (the loop logs it beside the loss)."""
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, max(cfg.warmup_steps, 1),
                                                  max(cfg.num_steps, cfg.warmup_steps + 1), 0.01 * cfg.learning_rate)
    raise ValueError(f"train.schedule must be 'constant' or 'warmup_cosine', got {cfg.schedule!r}")


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """The optimizer of the train config; building it names a bad train.optimizer or train.schedule."""
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
    tc, acai_cfg, morph_weight = config.train, config.acai, config.morph.weight
    key = jax.random.fold_in(jax.random.key(config.seed), state.step)
    k_augment, k_dropout, k_noise, k_alpha = jax.random.split(key, 4)
    k_morph = jax.random.fold_in(key, 1)  # beside the split, which stays as it was before the morph term
    k_pace = jax.random.fold_in(key, 2)
    k_pieces = jax.random.fold_in(key, 3)
    inputs, targets = augment.augment(unpack_voxels(packed[idx]), k_augment, config.augment)

    def loss_fn(params):
        z = state.apply_fn(params, inputs, True, method=models.Autoencoder.encode, rngs={"dropout": k_dropout})
        decode = functools.partial(state.apply_fn, params, method=models.Autoencoder.decode)
        logits = decode(_noisy(z, tc.latent_noise, k_noise))
        reconstruction = jnp.mean(losses.voxel_loss(logits, targets, config.loss))
        loss, aux, critic_inputs = reconstruction, {}, None
        if morph_weight:
            mixed, alpha = acai.interpolants(z, k_morph)
            morph_logits = decode(mixed)
            morphs = morph.morph_targets(targets, alpha)  # of the targets alone: no gradient flows into them
            aux["morph_term"] = jnp.mean(losses.voxel_loss(morph_logits, morphs, config.loss))
            loss += morph_weight * aux["morph_term"]
        if config.pace.weight:
            aux["pace_term"] = pace.batch_pace_term(decode, z, logits, k_pace, config.pace)
            loss += config.pace.weight * aux["pace_term"]
        if config.pieces.weight:
            aux["pieces_term"] = pieces.batch_pieces_term(decode, z, logits, k_pieces, config.pieces)
            loss += config.pieces.weight * aux["pieces_term"]
        if acai_cfg.weight:
            mixed, alpha = acai.interpolants(z, k_alpha)
            interpolated = jax.nn.sigmoid(decode(mixed))
            aux["acai_term"] = acai.autoencoder_term(state.critic.apply_fn(state.critic.params, interpolated))
            loss += acai_cfg.weight * aux["acai_term"]
            critic_inputs = (interpolated, alpha, jax.nn.sigmoid(logits))
        if aux:
            aux["reconstruction_loss"] = reconstruction
        return loss, (aux, critic_inputs)

    (loss, (aux, critic_inputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new = state.apply_gradients(grads=grads)
    out = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
    if tc.ema_decay:
        new = new.replace(ema_params=ema_update(state.ema_params, new.params, tc.ema_decay, state.step))
    if acai_cfg.weight:
        interpolated, alpha, reconstructions = critic_inputs
        critic, out["critic_loss"] = acai.critic_step(state.critic, interpolated, alpha, targets,
                                                      reconstructions, acai_cfg.gamma)
        new = new.replace(critic=critic)
    return new, out


def eval_step(params, packed: jax.Array, mask: jax.Array, *, model: models.Autoencoder,
              loss_cfg) -> tuple[dict[str, jax.Array], jax.Array]:
    """Sums over the shapes where `mask` is set (IoU at THRESHOLDS, and the Tversky index of the loss's
    overlap term where it has one, by which the run's threshold is chosen; occupancies, loss, count), and
    the reconstructions (prob > 0.5)."""
    x = unpack_voxels(packed)
    logits = model.apply(params, x)
    prob = jax.nn.sigmoid(logits)
    w = mask.astype(jnp.float32)
    scores = metrics.threshold_scores(prob, x, THRESHOLDS, losses.overlap_weights(loss_cfg))
    out = {name: jnp.sum(w * per_shape) for name, per_shape in scores.items()}
    out["pred_occupancy"] = jnp.sum(w * metrics.occupancy(prob > 0.5))
    out["target_occupancy"] = jnp.sum(w * metrics.occupancy(x))
    out["loss"] = jnp.sum(w * losses.voxel_loss(logits, x, loss_cfg))
    out["count"] = jnp.sum(w)
    return out, prob > 0.5


def all_finite(tree) -> jax.Array:
    """Whether every number of `tree` is finite (the loop checks the parameters with it)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
