"""The pace term: an interpolation regulariser aimed at the path scores themselves.

Algorithm 1 decodes (1 - t) z_a + t z_b at t = 0, 0.1, ..., 1, and its paths are scored on their
worst step (the lowest IoU of consecutive shapes) and on monotonicity. A decoder can reconstruct well
and still do most of a path's change in one step: a back that vanishes between t = 0.4 and 0.5. This
term decodes a few points inside the path between each of `pairs` batch shapes and its partner (the
batch reversed, as in `acai.mix_with_partner`), and penalises, softly on the occupancy probabilities:
- unevenness: the time-weighted variance of the path's speed (voxels changed per unit of t) around its
  mean, 0 when every stretch of t changes its share of the voxels;
- detour: the share of the path's length beyond the direct change between its ends, 0 when every voxel
  changes at most once along it (a monotone path).
The points are stratified in t (one in each of `points` equal stretches, away from their edges) so every
part of the path is trained. The ends are the batch's reconstructions, held fixed here: the
reconstruction loss owns them, this term shapes what lies between. `sharpness` scores the occupancy
sigmoid(sharpness x logit): on plain probabilities a blend of the two ends passes for an even path,
though every voxel crosses the threshold at once. Measured on configs/modelnet_chairs.py (one seed a
row, results/ablate_training/pace/): every weight made the validation paths less monotone and more
often in pieces, and weights >= 1 decoded every shape empty, so it is off there.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections


def pace_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        dict(
            weight=0.0,  # weight of the pace term beside the reconstruction loss; 0 = off
            pairs=32,  # paths a step: batch shape i to its partner, i < pairs (at most half the batch)
            points=3,  # decoded points inside each path
            sharpness=1.0,  # the occupancy scored is sigmoid(sharpness x logit): large = the thresholded shapes
        )
    )
    cfg.update(overrides)
    return cfg


def path_times(key: jax.Array, pairs: int, points: int) -> jax.Array:
    """(pairs, points + 2) ascending times 0, t_1, ..., t_points, 1; t_k uniform in the middle 80% of
    [(k - 1) / points, k / points], so no stretch is shorter than 0.1 / points."""
    u = jax.random.uniform(key, (pairs, points))
    inner = (jnp.arange(points) + 0.1 + 0.8 * u) / points
    return jnp.concatenate([jnp.zeros((pairs, 1)), inner, jnp.ones((pairs, 1))], axis=1)


def path_latents(z: jax.Array, times: jax.Array) -> jax.Array:
    """(pairs, points, ...) latents (1 - t) z_i + t z'_i at the inner times, z'_i = z[-1 - i]."""
    pairs = times.shape[0]
    start, end = z[:pairs], jnp.flip(z, axis=0)[:pairs]
    t = times[:, 1:-1].reshape(times[:, 1:-1].shape + (1,) * (z.ndim - 1))
    return (1.0 - t) * start[:, None] + t * end[:, None]


def batch_pace_term(decode: Callable[[jax.Array], jax.Array], z: jax.Array, logits: jax.Array, key: jax.Array,
                    cfg: ml_collections.ConfigDict) -> jax.Array:
    """The term of a training batch: its latents `z` and their reconstructions' `logits` (the paths'
    ends, held fixed), `decode` (latents -> logits) for the points inside, times drawn from `key`."""
    times = path_times(key, cfg.pairs, cfg.points)
    inner = path_latents(z, times)
    inner_logits = decode(inner.reshape((-1,) + z.shape[1:])).reshape(inner.shape[:2] + logits.shape[1:])
    ends = jax.lax.stop_gradient(logits)  # the reconstruction loss owns the ends of each path
    along = jnp.concatenate([ends[:cfg.pairs, None], inner_logits, jnp.flip(ends, axis=0)[:cfg.pairs, None]], axis=1)
    return pace_term(jax.nn.sigmoid(cfg.sharpness * along), times)


def pace_term(probs: jax.Array, times: jax.Array) -> jax.Array:
    """Mean over paths of unevenness + detour (module docstring). probs: (pairs, len(t), ...) occupancy
    probabilities along each path at `times` (pairs, len(t)), from 0 to 1."""
    p = probs.reshape(probs.shape[:2] + (-1,))
    changed = jnp.sum(jnp.abs(jnp.diff(p, axis=1)), axis=-1)  # (pairs, stretches) voxels changed, softly
    length = jnp.sum(changed, axis=1)
    direct = jnp.sum(jnp.abs(p[:, -1] - p[:, 0]), axis=-1)
    dt = jnp.diff(times, axis=1)
    # voxels changed per unit of t against the path's mean, both over (length + 1): a path with (almost)
    # nothing to change costs nothing
    speed = changed / (dt * (length[:, None] + 1.0))
    unevenness = jnp.sum(dt * jnp.square(speed - (length / (length + 1.0))[:, None]), axis=1)
    detour = (length - direct) / (length + 1.0)
    return jnp.mean(unevenness + detour)
