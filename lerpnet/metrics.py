"""Shape-agreement metrics on voxel grids, bool or bit-packed, computed on the device.

IoU, not voxel accuracy: at 5% occupancy an empty prediction is 95% accurate.
"""

import jax
import jax.numpy as jnp


def _ratio(intersection, union):
    # Two empty grids agree perfectly.
    return jnp.where(union == 0, 1.0, intersection / jnp.maximum(union, 1)).astype(jnp.float32)


def iou(a, b) -> jnp.ndarray:
    """Intersection over union of bool grids over their last three axes."""
    a, b = jnp.asarray(a, bool), jnp.asarray(b, bool)
    axes = (-3, -2, -1)
    return _ratio(jnp.sum(a & b, axis=axes), jnp.sum(a | b, axis=axes))


def packed_iou(pa, pb) -> jnp.ndarray:
    """`iou` on grids packed by `lerpnet.bitpack.pack_voxels` (uint32 over the last two axes)."""
    pa, pb = jnp.asarray(pa, jnp.uint32), jnp.asarray(pb, jnp.uint32)
    count = lambda w: jnp.sum(jax.lax.population_count(w).astype(jnp.int32), axis=(-2, -1))
    return _ratio(count(pa & pb), count(pa | pb))


def occupancy(a) -> jnp.ndarray:
    """Fraction of full voxels over the last three axes."""
    return jnp.mean(jnp.asarray(a, bool), axis=(-3, -2, -1), dtype=jnp.float32)
