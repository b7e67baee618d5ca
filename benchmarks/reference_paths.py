"""Path scores of morphs made without a model, between the true validation chairs: what the geometry of
the pairs gives the path scores that the decoder's paths are held to.

    python -m benchmarks.reference_paths --workdir=runs/reference_paths   # LERPNET_DATA=<folder of the tarball>

The pairs, the rules and the summary are those of the training ablation's path scores
(benchmarks.trained_scores, lerpnet.allpairs.scores): every unique pair of the validation chairs of
configs/modelnet_chairs.py's split, 11 steps, novelty against the training chairs' canonical poses.
Two morphs:
- `distance_morph`: full where (1 - t) d_i + t d_j < 0, d each chair's signed distance field (the
  classic shape morph; lerpnet.morph trains latent mixes toward it);
- `one_jump`: chair i up to the middle step, chair j after it (its lowest step IoU is the IoU of the
  two chairs themselves).
Writes reference_paths.{json,csv,md}. CPU, about a minute.
"""

from __future__ import annotations

import pathlib

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from lerpnet import console, distance, metrics
from lerpnet.allpairs.scores import reference_matrix
from lerpnet.bitpack import pack_voxels
from lerpnet.configs import modelnet_chairs
from lerpnet.data import load_dataset
from lerpnet.tables import write_table

from benchmarks import trained_scores

MORPHS = ("distance_morph", "one_jump")


def morph_paths(kind: str, a: np.ndarray, b: np.ndarray, da: np.ndarray, db: np.ndarray, steps: int) -> np.ndarray:
    """(P, steps, 32, 32, 32) bool paths from the shapes a to b (P, 32, 32, 32); da, db their signed distances."""
    t = np.linspace(0.0, 1.0, steps)[None, :, None, None, None]
    if kind == "distance_morph":
        return ((1.0 - t) * da[:, None] + t * db[:, None]) < 0
    if kind == "one_jump":
        return np.where(t < 0.5, a[:, None], b[:, None])
    raise ValueError(f"unknown morph {kind!r}; known: {', '.join(MORPHS)}")


def reference_scores(val: np.ndarray, train: np.ndarray, *, steps: int = 11, batch_pairs: int = 128) -> tuple[list, dict]:
    """One row per morph (trained_scores.summarise of its paths) and the meta: pairs, median input IoU."""
    d = np.asarray(distance.signed_distance(jnp.asarray(val)))
    inputs = pack_voxels(jnp.asarray(val))
    bits, counts = reference_matrix(jnp.asarray(train))
    i_all, j_all = np.triu_indices(len(val), 1)
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
    return rows, {"pairs": len(i_all), "steps": steps, "median_input_iou": float(np.median(input_iou))}


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
    canonical = [k for k, i in enumerate(dataset.train_ids) if i.endswith("_1")]
    val = np.asarray(dataset.val_voxels).astype(bool)
    rows, meta = reference_scores(val, np.asarray(dataset.train_voxels[canonical]).astype(bool))
    meta = {"data": "ModelNet10 chairs (3D ShapeNets), the validation split of configs/modelnet_chairs.py",
            "validation_chairs": len(val), **meta}
    out = write_table(pathlib.Path(args.workdir) / "reference_paths", rows, meta)
    console.print_outputs({"table": out})


if __name__ == "__main__":
    define_flags()
    app.run(main)
