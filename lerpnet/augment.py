"""Training-time augmentation of occupancy batches: pure functions of a key, on the device.

ModelNet's 12 azimuths are already in the data (`data.rotations="all"`); these add what the data
lacks. Mirrors and translations move input and target together (a new shape to reconstruct);
random erasing blanks a box of the input only, so the model learns to restore what is missing
(thin parts are what it misses most).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections


def augment_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        dict(
            mirror_axis=1,  # random mirror along this grid axis (chairs: left-right, y); -1 = off
            max_shift=0,  # random translation by -max_shift..max_shift voxels per axis, zero fill; 0 = off
            erase_prob=0.0,  # probability that a shape's input has a random box blanked; 0 = off
            erase_size=8,  # edge of the blanked box in voxels
        )
    )
    cfg.update(overrides)
    return cfg


def mirror(voxels: jax.Array, key: jax.Array, axis: int) -> jax.Array:
    """Mirror each shape of (B, R, R, R) along grid `axis` with probability 1/2; axis -1 = unchanged."""
    if axis < 0:
        return voxels
    flip = jax.random.bernoulli(key, 0.5, (voxels.shape[0],))[:, None, None, None]
    return jnp.where(flip, jnp.flip(voxels, axis=1 + axis), voxels)


def translate(voxels: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
    """Shift each shape by a random whole number of voxels in [-max_shift, max_shift] per axis;
    voxels pushed past the edge are dropped, the space left is empty."""
    if max_shift <= 0:
        return voxels
    b, r = voxels.shape[0], voxels.shape[1]
    shifts = jax.random.randint(key, (b, 3), -max_shift, max_shift + 1)
    padded = jnp.pad(voxels, [(0, 0)] + [(max_shift, max_shift)] * 3)

    def one(grid, shift):
        return jax.lax.dynamic_slice(grid, tuple(max_shift - shift), (r, r, r))

    return jax.vmap(one)(padded, shifts)


def erase(voxels: jax.Array, key: jax.Array, prob: float, size: int) -> jax.Array:
    """With probability `prob` per shape, empty a random size^3 box inside the grid."""
    if prob <= 0:
        return voxels
    b, r = voxels.shape[0], voxels.shape[1]
    k_apply, k_where = jax.random.split(key)
    apply = jax.random.bernoulli(k_apply, prob, (b,))
    lo = jax.random.randint(k_where, (b, 3, 1), 0, r - size + 1)
    at = jnp.arange(r)
    inside = (at >= lo) & (at < lo + size)  # (B, 3, R): inside the box along each axis
    box = inside[:, 0, :, None, None] & inside[:, 1, None, :, None] & inside[:, 2, None, None, :]
    return jnp.where(apply[:, None, None, None] & box, jnp.zeros((), voxels.dtype), voxels)


def augment(voxels: jax.Array, key: jax.Array, cfg: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """(inputs, targets) for a training batch: the same mirror and shift on both, erasing on the input."""
    k_mirror, k_shift, k_erase = jax.random.split(key, 3)
    targets = translate(mirror(voxels, k_mirror, cfg.mirror_axis), k_shift, cfg.max_shift)
    return erase(targets, k_erase, cfg.erase_prob, cfg.erase_size), targets
