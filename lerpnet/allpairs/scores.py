"""Every scoring rule for interpolation paths: on the device from bit-packed grids, then on the host.

A path is the T decoded shapes between two inputs. What makes it a good morph, in numbers:
it starts and ends at the inputs (endpoint fidelity), never jumps (smoothness: the lowest IoU
between consecutive steps), moves away from one input and towards the other (monotonicity), and
its middle is a shape that is not simply a training shape (novelty: the highest IoU of the
midpoint with any training shape; low means new). `plausible` and `largest_part` decide whether
a midpoint counts as a shape at all; `medians` and `by_split` summarise.

The path from j to i is the path from i to j reversed, so `reversed_scores` derives its scores
from those of i -> j (exactly: every rule below is checked against it in the tests), and
`OrderedPairScores` assembles every ordered pair from the unique ones and the N constant paths.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.metrics import iou_from_counts, packed_iou

VOXELS = 32 * 32 * 32


def as_packed(grids) -> jax.Array:
    """bool (..., 32, 32, 32) grids -> packed uint32 (..., 32, 32); packed grids pass through."""
    grids = jnp.asarray(grids)
    return grids if grids.dtype == jnp.uint32 else pack_voxels(grids.astype(bool))


def _occupancy(packed: jax.Array) -> jax.Array:
    """Fraction of full voxels of packed grids, by popcount (exact: counts <= 32768 < 2**24)."""
    count = jnp.sum(jax.lax.population_count(packed).astype(jnp.int32), axis=(-2, -1))
    return count.astype(jnp.float32) / VOXELS


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
        "occupancy": _occupancy(path),
        "occupancy_start": _occupancy(start),
        "occupancy_end": _occupancy(end),
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
    iou = iou_from_counts(inter, union)
    return jnp.max(iou, axis=1), jnp.argmax(iou, axis=1).astype(jnp.int32)


def midpoint_novelty(path, reference_bits, reference_counts, *, reverse: bool = False) -> dict[str, jax.Array]:
    """`novelty_iou` and `nearest_reference` of each path's midpoint (step T // 2).

    reverse=True with an even T also scores step T // 2 - 1, the midpoint of the reversed path
    (`reverse_novelty_iou`, `reverse_nearest_reference`), so `reversed_scores` can derive it; with
    an odd T the two midpoints are one step and nothing is added.
    """
    path = as_packed(path)
    steps = path.shape[1]
    out = dict(zip(("novelty_iou", "nearest_reference"),
                   nearest_iou(path[:, steps // 2], reference_bits, reference_counts)))
    if reverse and steps % 2 == 0:
        out["reverse_novelty_iou"], out["reverse_nearest_reference"] = nearest_iou(
            path[:, steps // 2 - 1], reference_bits, reference_counts)
    return out


# How each score of i -> j gives the score of j -> i: (the score it comes from, reversed along steps?).
_REVERSED = {
    "iou_start": ("iou_end", False), "iou_end": ("iou_start", False),
    "iou_to_start": ("iou_to_end", True), "iou_to_end": ("iou_to_start", True),
    "step_iou": ("step_iou", True), "occupancy": ("occupancy", True),
    "occupancy_start": ("occupancy_end", False), "occupancy_end": ("occupancy_start", False),
    # the minimum step IoU, the share of right-way steps and the largest wrong-way change are the
    # same read backwards (a right-way step of i -> j is one of j -> i: falling and rising swap sign)
    "smoothness": ("smoothness", False), "monotonicity": ("monotonicity", False),
    "monotonic_violation": ("monotonic_violation", False),
}
_MIDPOINT = {"novelty_iou": "reverse_novelty_iou", "nearest_reference": "reverse_nearest_reference"}
_MIDPOINT |= {v: k for k, v in _MIDPOINT.items()}


def reversed_scores(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The scores of the reversed paths (j -> i) from those of i -> j; every key must have a rule.

    The midpoint of the reversed path is the same step when T is odd; with an even T the scores
    must hold the `reverse_*` midpoint (from `midpoint_novelty(reverse=True)`), and the two swap.
    """
    both_midpoints = "reverse_novelty_iou" in scores
    steps = scores["occupancy"].shape[1]
    if steps % 2 == 0 and "novelty_iou" in scores and not both_midpoints:
        raise ValueError(f"with an even number of steps ({steps}) the reversed path's midpoint is another step: "
                         "score it with midpoint_novelty(reverse=True)")
    out = {}
    for key, value in scores.items():
        if key in _REVERSED:
            source, flip = _REVERSED[key]
            out[key] = scores[source][:, ::-1] if flip else scores[source]
        elif key in _MIDPOINT:
            out[key] = scores[_MIDPOINT[key]] if both_midpoints else value
        else:
            raise ValueError(f"no rule for reversing the score {key!r}")
    return out


class OrderedPairScores:
    """Every ordered pair's scores, row i * n + j, filled block by block as the paths are scored.

    A block of pairs i < j fills (i, j) and, through `reversed_scores`, (j, i); a block of constant
    paths (i, i) fills the diagonal; `reverse_*` keys are dropped. Filling a block while the device
    scores the next keeps this host work (25 M rows at N = 5000) off the stream's critical path.
    """

    def __init__(self, n: int):
        self.n = n
        self._scores: dict[str, np.ndarray] = {}
        self._filled = 0

    def add(self, pairs: np.ndarray, part: dict[str, np.ndarray]) -> None:
        """One block: its pairs (K, 2) and their host scores (K, ...)."""
        i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
        other = i != j
        if other.all():  # a block of pairs i < j (blocks of constant paths have none)
            backward = reversed_scores(part)
        else:
            backward = reversed_scores({k: v[other] for k, v in part.items()}) if other.any() else {}
        for key, value in part.items():
            if key.startswith("reverse_"):
                continue
            if key not in self._scores:
                self._scores[key] = np.empty((self.n * self.n, *value.shape[1:]), value.dtype)
            grid = self._scores[key]
            grid[i * self.n + j] = value
            if backward:
                grid[j[other] * self.n + i[other]] = backward[key]
        self._filled += len(i) + int(other.sum())

    def result(self) -> dict[str, np.ndarray]:
        """The (n * n, ...) scores; ValueError unless every ordered pair was filled once."""
        if self._filled != self.n * self.n:
            raise ValueError(f"{self._filled} of the {self.n * self.n} ordered pairs were scored")
        return self._scores


def plausible(scores: dict[str, np.ndarray], plausible_cfg) -> np.ndarray:
    """Paths whose midpoint can count as a shape (scores only; `largest_part` is checked later):
    smooth, both inputs reconstructed, midpoint occupancy in range of the inputs'."""
    occ = scores["occupancy"]
    mid = occ[:, occ.shape[1] // 2]
    lo, hi = plausible_cfg.occupancy_range
    low_input = np.minimum(scores["occupancy_start"], scores["occupancy_end"])
    high_input = np.maximum(scores["occupancy_start"], scores["occupancy_end"])
    return ((scores["i"] != scores["j"])
            & (scores["smoothness"] >= plausible_cfg.min_smoothness)
            & (np.minimum(scores["iou_start"], scores["iou_end"]) >= plausible_cfg.min_endpoint_iou)
            & (mid >= lo * low_input) & (mid <= hi * high_input))


def largest_part(grid: np.ndarray) -> float:
    """Fraction of a grid's voxels in its largest face-connected piece (1.0 for an empty grid)."""
    labels, count = scipy.ndimage.label(grid)
    if count == 0:
        return 1.0
    return float(np.bincount(labels.ravel())[1:].max() / grid.sum())


def medians(scores: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float]:
    """The median of each score over the paths in `mask`, and the fraction of monotone paths."""
    mid = scores["occupancy"].shape[1] // 2
    columns = {
        "iou_start": scores["iou_start"],
        "iou_end": scores["iou_end"],
        "smoothness": scores["smoothness"],
        "monotonicity": scores["monotonicity"],
        "monotonic_violation": scores["monotonic_violation"],
        "novelty_iou": scores["novelty_iou"],
        "midpoint_occupancy": scores["occupancy"][:, mid],
    }
    out = {f"median_{k}": float(np.median(v[mask])) if mask.any() else float("nan") for k, v in columns.items()}
    out["fraction_monotone"] = float(np.mean(scores["monotonicity"][mask] == 1.0)) if mask.any() else float("nan")
    return out


def by_split(scores: dict[str, np.ndarray], splits: tuple[str, ...], mask: np.ndarray) -> dict[str, dict]:
    """Medians per combination of the two inputs' splits ("val-val", "train-val", ...)."""
    names = sorted(set(splits))
    code = np.array([names.index(s) for s in splits])
    a, b = code[scores["i"]], code[scores["j"]]
    group = np.minimum(a, b) * len(names) + np.maximum(a, b)  # names sorted: the lower code comes first
    return {f"{names[g // len(names)]}-{names[g % len(names)]}": {
        "paths": int((mask & (group == g)).sum()), **medians(scores, mask & (group == g))}
        for g in np.unique(group[mask])}
