"""Signed Euclidean distance fields of occupancy grids, on the device.

Training derives two things from a target's distance field: the morph term's targets (lerpnet.morph)
and the distance-softened reconstruction targets (lerpnet.losses). Both are computed from the
augmented targets every step, since mirrors and shifts change them, so the transform is one that
fuses on a GPU: exact, separable, a windowed minimum per axis.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _squared_distance_along(f: jax.Array, axis: int, window: int, far: float) -> jax.Array:
    """min over |o| <= window of f[x + o] + o^2 along `axis` (`far` beyond the grid): one pass of the
    separable exact transform (Saito and Toriwaki 1994), as elementwise minima of shifted copies."""
    pad = [(0, 0)] * f.ndim
    pad[axis] = (window, window)
    padded = jnp.pad(f, pad, constant_values=far)
    r = f.shape[axis]
    out = f
    for o in range(-window, window + 1):
        if o:
            out = jnp.minimum(out, jax.lax.slice_in_dim(padded, window + o, window + o + r, axis=axis) + o * o)
    return out


def distance_to(mask: jax.Array, max_distance: int | None = None) -> jax.Array:
    """Euclidean distance, in voxels, from each voxel centre of (B, R, R, R) to the nearest set voxel's.

    Exact up to `max_distance` (None: the whole grid) and at least `max_distance` beyond it: a voxel
    within that distance is within it along each axis, so each pass only looks that far. No set voxel
    within reach: the grid's diagonal (None) or `max_distance`."""
    r = mask.shape[-1]
    window = r - 1 if max_distance is None else min(int(max_distance), r - 1)
    cap = 3.0 * r * r if max_distance is None else min(float(max_distance) ** 2, 3.0 * r * r)
    far = 3.0 * r * r
    f = jnp.where(mask, 0.0, far)
    for axis in range(f.ndim - 3, f.ndim):
        f = _squared_distance_along(f, axis, window, far)
    return jnp.sqrt(jnp.minimum(f, cap))


def signed_distance(voxels: jax.Array, max_distance: int | None = None) -> jax.Array:
    """(B, R, R, R) occupancy -> signed distance to the surface, halfway between full and empty voxel
    centres: -0.5 on a full voxel next to an empty one, +0.5 on the empty one, negative inside;
    magnitudes clipped at max_distance - 0.5 (None: exact everywhere)."""
    full = voxels.astype(bool)
    return jnp.where(full, 0.5 - distance_to(~full, max_distance), distance_to(full, max_distance) - 0.5)
