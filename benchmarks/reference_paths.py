"""Path scores of morphs made without a model, between the true validation chairs: what the geometry of
the pairs gives the path scores that the decoder's paths are held to.

    python -m benchmarks.reference_paths --workdir=runs/reference_paths   # LERPNET_DATA=<folder of the tarball>

The pairs, the rules and the summary are those of the training ablation's path scores
(benchmarks.trained_scores, lerpnet.allpairs.scores): every unique pair of the validation chairs of
configs/modelnet_chairs.py's split, 11 steps, novelty against the training chairs' canonical poses.
Three morphs:
- `distance_morph`: full where (1 - t) d_i + t d_j < 0, d each chair's signed distance field (the
  classic shape morph; lerpnet.morph trains latent mixes toward it);
- `even_distance_morph`: the same voxels flipping in the same order, re-timed so that every step flips
  as many of them: each voxel of one chair and not the other flips once, at its crossing time, and the
  even morph uses the crossing time's rank among the pair's flips instead (the best lowest step IoU a
  monotone path of that order can have, and what such evenness costs the midpoint);
- `one_jump`: chair i up to the middle step, chair j after it (its lowest step IoU is the IoU of the
  two chairs themselves).
Beside them, from voxel counts alone, `even_count_path`: the lowest step IoU of a path that at every
step removes the same share of chair i's own voxels and adds the same share of chair j's, whichever
voxels they are (`even_count_lowest_step_iou`): what the path-smoothness target asks for.
Writes reference_paths.{json,csv,md}. CPU, about a minute.
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from lerpnet import console, distance, metrics
from lerpnet.allpairs.scores import reference_matrix
from lerpnet.allpairs.shapes import pair_list
from lerpnet.bitpack import pack_voxels
from lerpnet.configs import modelnet_chairs
from lerpnet.data import load_dataset
from lerpnet.tables import write_table

from benchmarks import trained_scores

MORPHS = ("distance_morph", "even_distance_morph", "one_jump")


def morph_paths(kind: str, a: np.ndarray, b: np.ndarray, da: np.ndarray, db: np.ndarray, steps: int) -> np.ndarray:
    """(P, steps, 32, 32, 32) bool paths from the shapes a to b (P, 32, 32, 32); da, db their signed distances."""
    t = np.linspace(0.0, 1.0, steps)[None, :, None, None, None]
    if kind == "distance_morph":
        return ((1.0 - t) * da[:, None] + t * db[:, None]) < 0
    if kind == "even_distance_morph":
        inside = da < 0
        flips = inside != (db < 0)  # (1 - t) da + t db is linear in t: each of these crosses 0 once
        crossing = np.where(flips, da / np.where(flips, da - db, 1.0), np.inf).reshape(len(da), -1)
        rank = np.empty_like(crossing, dtype=np.int64)
        np.put_along_axis(rank, np.argsort(crossing, axis=1, kind="stable"), np.arange(crossing.shape[1]), axis=1)
        share = ((rank + 1) / np.maximum(flips.reshape(len(da), -1).sum(1, keepdims=True), 1)).reshape(da.shape)
        return np.where(flips[:, None], inside[:, None] ^ (share[:, None] <= t + 1e-9), inside[:, None])
    if kind == "one_jump":
        return np.where(t < 0.5, a[:, None], b[:, None])
    raise ValueError(f"unknown morph {kind!r}; known: {', '.join(MORPHS)}")


def even_count_lowest_step_iou(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """(P,) lowest consecutive-step IoU of the path from a to b (P, 32, 32, 32) that at each of its steps - 1
    steps removes 1 / (steps - 1) of a's voxels not in b and adds as many of b's not in a: step s has
    |S_s| = |a| + s (added - removed) voxels, and its IoU with the next is (|S_s| - removed) / (|S_s| + added)."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    both = (a & b).sum(1)
    removed, added = (a.sum(1) - both) / (steps - 1), (b.sum(1) - both) / (steps - 1)
    size = a.sum(1) + np.arange(steps - 1)[:, None] * (added - removed)
    return ((size - removed) / (size + added)).min(0)


def reference_scores(val: np.ndarray, train: np.ndarray, *, steps: int = 11, batch_pairs: int = 128) -> tuple[list, dict]:
    """One row per morph (trained_scores.summarise of its paths) and the meta: pairs, median input IoU."""
    d = np.asarray(distance.signed_distance(jnp.asarray(val)))
    inputs = pack_voxels(jnp.asarray(val))
    bits, counts = reference_matrix(jnp.asarray(train))
    i_all, j_all = pair_list(len(val), "unique").T
    rows = []
    for kind in MORPHS:
        parts = []
        for s in range(0, len(i_all), batch_pairs):
            i, j = i_all[s: s + batch_pairs], j_all[s: s + batch_pairs]
            paths = morph_paths(kind, val[i], val[j], d[i], d[j], steps)
            packed = pack_voxels(jnp.asarray(paths))
            parts.append(trained_scores.score_paths(packed, inputs[i], inputs[j], bits, counts))
        rows.append({"morph": kind, **trained_scores.summarise(parts)})
        logging.info("%s: %s", kind, rows[-1])
    input_iou = np.asarray(metrics.iou(jnp.asarray(val[i_all]), jnp.asarray(val[j_all])))
    even = even_count_lowest_step_iou(val[i_all], val[j_all], steps)
    return rows, {"pairs": len(i_all), "steps": steps, "median_input_iou": float(np.median(input_iou)),
                  "median_even_count_path_lowest_step_iou": float(np.median(even)),
                  "even_count_paths_at_least_0.82": float(np.mean(even >= 0.82))}


def define_flags() -> None:
    """The program's flags (defined when it runs, so that importing its functions defines none)."""
    flags.DEFINE_string("workdir", None, "Folder for reference_paths.{json,csv,md}.")
    flags.DEFINE_string("data", "", "The ModelNet10 chair tarball or its folder ('' = found in $LERPNET_DATA).")
    flags.mark_flags_as_required(["workdir"])


def main(argv):
    console.start(argv)
    args = flags.FLAGS
    config = modelnet_chairs.get_config()
    config.data.path = args.data
    with console.one_line_errors((ValueError, OSError)):  # a missing or unreadable dataset
        dataset = load_dataset(config.data)
    val = np.asarray(dataset.val_voxels).astype(bool)
    reference = trained_scores.canonical_training_shapes(dataset, config.data.rotations).astype(bool)
    rows, meta = reference_scores(val, reference)
    meta = {"data": "ModelNet10 chairs (3D ShapeNets), the validation split of configs/modelnet_chairs.py",
            "validation_chairs": len(val), **meta}
    out = write_table(pathlib.Path(args.workdir) / "reference_paths", rows, meta)
    console.print_outputs({"table": out})


if __name__ == "__main__":
    define_flags()
    app.run(main)
