"""Shape-agreement metrics on voxel grids, bool or bit-packed, computed on the device.

IoU, not voxel accuracy: at 5% occupancy an empty prediction is 95% accurate. True and false
positive rates say which way a reconstruction errs (thin parts missed, or blobs added).
"""

import jax
import jax.numpy as jnp


def iou_from_counts(intersection, union):
    """intersection / union as float32, exactly 1 where they are equal: two equal grids (two empty ones
    included) agree perfectly, and a GPU's float32 division can land x / x an ulp off 1."""
    ratio = intersection / jnp.maximum(union, 1)
    return jnp.where(intersection == union, 1.0, ratio).astype(jnp.float32)


def iou(a, b) -> jnp.ndarray:
    """Intersection over union of bool grids over their last three axes."""
    a, b = jnp.asarray(a, bool), jnp.asarray(b, bool)
    axes = (-3, -2, -1)
    return iou_from_counts(jnp.sum(a & b, axis=axes), jnp.sum(a | b, axis=axes))


def packed_iou(pa, pb) -> jnp.ndarray:
    """`iou` on grids packed by `lerpnet.bitpack.pack_voxels` (uint32 over the last two axes)."""
    pa, pb = jnp.asarray(pa, jnp.uint32), jnp.asarray(pb, jnp.uint32)
    count = lambda w: jnp.sum(jax.lax.population_count(w).astype(jnp.int32), axis=(-2, -1))
    return iou_from_counts(count(pa & pb), count(pa | pb))


def occupancy(a) -> jnp.ndarray:
    """Fraction of full voxels over the last three axes."""
    return jnp.mean(jnp.asarray(a, bool), axis=(-3, -2, -1), dtype=jnp.float32)


def voxel_rates(pred, target) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(true positive rate, false positive rate) pooled over every voxel of every grid: the share of
    full target voxels predicted full, and of empty ones predicted full."""
    pred, target = jnp.asarray(pred, bool), jnp.asarray(target, bool)
    full = jnp.sum(target, dtype=jnp.float32)
    empty = jnp.asarray(target.size, jnp.float32) - full
    tp = jnp.sum(pred & target, dtype=jnp.float32)
    fp = jnp.sum(pred & ~target, dtype=jnp.float32)
    return tp / jnp.maximum(full, 1.0), fp / jnp.maximum(empty, 1.0)


def choose_threshold(val_metrics: dict[str, float]) -> tuple[float, float]:
    """(threshold, IoU): the threshold of the highest mean IoU among a validation record's "iou@<t>"
    entries; of equal IoUs the one nearest 0.5 wins. Chosen on validation, stored with the run."""
    scores = {float(k.split("@", 1)[1]): float(v) for k, v in val_metrics.items() if k.startswith("iou@")}
    if not scores:
        raise ValueError(f"no 'iou@<threshold>' entries to choose from in {sorted(val_metrics)}")
    best = max(scores, key=lambda t: (scores[t], -abs(t - 0.5)))
    return best, scores[best]
