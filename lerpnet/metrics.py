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


def tversky_index(pred, target, alpha: float, beta: float) -> jnp.ndarray:
    """TP / (TP + alpha FP + beta FN) of bool grids over their last three axes, 1 where both are empty:
    IoU at alpha = beta = 1, Dice at 0.5; beta > alpha counts a missed voxel above an extra one."""
    pred, target = jnp.asarray(pred, bool), jnp.asarray(target, bool)
    axes = (-3, -2, -1)
    count = lambda x: jnp.sum(x, axis=axes, dtype=jnp.float32)
    tp, fp, fn = count(pred & target), count(pred & ~target), count(~pred & target)
    weighted = tp + alpha * fp + beta * fn
    return jnp.where(weighted > 0, tp / jnp.maximum(weighted, 1e-12), 1.0).astype(jnp.float32)


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


def threshold_scores(prob, target, thresholds,
                     overlap: tuple[float, float] | None = None) -> dict[str, jnp.ndarray]:
    """Per-shape scores of `prob > t` for each threshold t, the entries `choose_threshold` reads: "iou@t",
    and "overlap@t" (`tversky_index` with the `overlap` weights of the run's loss) when it has them."""
    out = {f"iou@{t}": iou(prob > t, target) for t in thresholds}
    if overlap:
        out.update({f"overlap@{t}": tversky_index(prob > t, target, *overlap) for t in thresholds})
    return out


# Validation scores this close are one score: on 84 validation chairs the IoU of one recipe differs by about 0.002
# between seeds, so the choice among thresholds whose scores differ by less goes to the one nearest 0.5.
NEAR_TIE = 0.001


def _by_threshold(val_metrics: dict[str, float], name: str) -> dict[float, float]:
    return {float(k.split("@", 1)[1]): float(v) for k, v in val_metrics.items() if k.startswith(f"{name}@")}


def choose_threshold(val_metrics: dict[str, float]) -> tuple[float, float]:
    """(threshold, IoU at it) from a validation record: the threshold of the highest mean "overlap@<t>"
    where the record has them (the Tversky index of the run's loss, which weighs a missed voxel against an
    extra one as the training did: lerpnet.steps.eval_step), else of the highest mean "iou@<t>"; of the
    thresholds within NEAR_TIE of the highest score the one nearest 0.5 wins. Chosen on validation, stored with
    the run.

    Why not the best IoU: a loss that counts misses above extras (the pos_weight of its cross-entropy, a
    Tversky beta above alpha) makes shapes a little fuller than the truth, and the best IoU then lies at a
    high threshold that takes back the thin parts the loss kept (results/ablate_training/thresholds/)."""
    ious = _by_threshold(val_metrics, "iou")
    if not ious:
        raise ValueError(f"no 'iou@<threshold>' entries to choose from in {sorted(val_metrics)}")
    scores = _by_threshold(val_metrics, "overlap") or ious
    missing = sorted(set(scores) - set(ious))
    if missing:
        raise ValueError(f"overlap@ entries without an iou@ entry at the same threshold: {missing}")
    top = max(scores.values())
    best = min((t for t in scores if scores[t] >= top - NEAR_TIE), key=lambda t: (abs(t - 0.5), -scores[t]))
    return best, ious[best]
