"""Scores for interpolation paths, computed on the device from bit-packed (or bool) grids.

A path is the T decoded shapes between two inputs. What makes it a good morph, in numbers:
it starts and ends at the inputs (endpoint fidelity), never jumps (smoothness: the lowest IoU
between consecutive steps), moves away from one input and towards the other (monotonicity), and
its middle is a shape that is not simply a training shape (novelty: the highest IoU of the
midpoint with any training shape; low means new).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.metrics import occupancy, packed_iou

VOXELS = 32 * 32 * 32


def as_packed(grids) -> jax.Array:
    """bool (..., 32, 32, 32) grids -> packed uint32 (..., 32, 32); packed grids pass through."""
    grids = jnp.asarray(grids)
    return grids if grids.dtype == jnp.uint32 else pack_voxels(grids.astype(bool))


def path_scores(path, start, end, tolerance: float = 0.0) -> dict[str, jax.Array]:
    """Per-path scores of P paths of T steps.

    path: (P, T, 32, 32) packed or (P, T, 32, 32, 32) bool; start, end: the inputs, (P, ...) likewise.
    `tolerance` is the IoU change counted as "no change" by the monotonicity score.

    Returns arrays with leading axis P: `iou_start`/`iou_end` (first/last step vs its input),
    `iou_to_start`/`iou_to_end` (P, T), `step_iou` (P, T-1), `smoothness` (its minimum),
    `monotonicity` (fraction of the T-1 steps on which IoU to start does not rise and IoU to end
    does not fall), `monotonic_violation` (the largest wrong-way change, 0 for a monotone path),
    `occupancy` (P, T) and `occupancy_start`/`occupancy_end` of the inputs.
    """
    path, start, end = as_packed(path), as_packed(start), as_packed(end)
    to_start = packed_iou(path, start[:, None])
    to_end = packed_iou(path, end[:, None])
    step_iou = packed_iou(path[:, 1:], path[:, :-1])
    falling = jnp.diff(to_start, axis=1)  # should be <= 0
    rising = jnp.diff(to_end, axis=1)  # should be >= 0
    right_way = (falling <= tolerance) & (rising >= -tolerance)
    violation = jnp.maximum(jnp.max(falling, axis=1), jnp.max(-rising, axis=1))
    return {
        "iou_start": to_start[:, 0],
        "iou_end": to_end[:, -1],
        "iou_to_start": to_start,
        "iou_to_end": to_end,
        "step_iou": step_iou,
        "smoothness": jnp.min(step_iou, axis=1),
        "monotonicity": jnp.mean(right_way, axis=1, dtype=jnp.float32),
        "monotonic_violation": jnp.maximum(violation, 0.0),
        "occupancy": occupancy(unpack_voxels(path)),
        "occupancy_start": occupancy(unpack_voxels(start)),
        "occupancy_end": occupancy(unpack_voxels(end)),
    }


def reference_matrix(shapes) -> tuple[jax.Array, jax.Array]:
    """M reference shapes (packed or bool) -> (bits (M, 32768) bfloat16 of 0/1, voxel counts (M,))."""
    bits = unpack_voxels(as_packed(shapes)).reshape(-1, VOXELS)
    return bits.astype(jnp.bfloat16), jnp.sum(bits, axis=1, dtype=jnp.float32)


def nearest_iou(shapes, reference_bits, reference_counts) -> tuple[jax.Array, jax.Array]:
    """Highest IoU of each of B shapes with any of M reference shapes, and the index of that shape.

    The B x M intersections are one matrix product of 0/1 bits instead of B*M popcount passes
    over packed words: it runs on the matrix units, and it is exact (0/1 products summed in
    float32, counts <= 32768 < 2**24). `reference_*` come from `reference_matrix`.
    """
    bits = unpack_voxels(as_packed(shapes)).reshape(-1, VOXELS)
    counts = jnp.sum(bits, axis=1, dtype=jnp.float32)
    inter = jnp.dot(bits.astype(jnp.bfloat16), reference_bits.T, preferred_element_type=jnp.float32)
    union = counts[:, None] + reference_counts[None, :] - inter
    iou = jnp.where(union == 0, 1.0, inter / jnp.maximum(union, 1.0))
    return jnp.max(iou, axis=1), jnp.argmax(iou, axis=1).astype(jnp.int32)
