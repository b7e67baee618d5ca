"""How well a trained autoencoder does on given shapes: reconstruction IoU at each threshold, true and
false positive rates, and the path scores of the pairs among them. Shared by the training ablation
and the cross-domain report; every rule comes from lerpnet.metrics and lerpnet.allpairs.scores.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import metrics, models
from lerpnet.allpairs.scores import largest_part, midpoint_novelty, path_scores, reference_matrix
from lerpnet.allpairs.shapes import pair_list
from lerpnet.bitpack import pack_voxels, unpack_voxels
from lerpnet.ops.lerp import interpolate_pairs

ONE_PIECE = 0.95  # a midpoint is one piece when its largest face-connected part holds this share of it
SMOOTH = 0.8  # a path is smooth when every consecutive-step IoU is at least this


def canonical_training_shapes(dataset, rotations: str) -> np.ndarray:
    """The training chairs in their canonical pose, novelty's reference set: all of them, unless the
    dataset was read with ModelNet's 12 azimuths (`data.rotations="all"`; the canonical one is rotation 1)."""
    keep = [k for k, i in enumerate(dataset.train_ids) if rotations != "all" or i.endswith("_1")]
    return np.asarray(dataset.train_voxels[keep])


def _batches(n: int, batch: int):
    return [slice(s, min(s + batch, n)) for s in range(0, n, batch)]


def probabilities(model: models.Autoencoder, params, voxels: np.ndarray, batch: int = 128) -> np.ndarray:
    """sigmoid(decode(encode(x))) of (N, 32, 32, 32) shapes, float32."""
    run = jax.jit(lambda p, x: jax.nn.sigmoid(model.apply(p, x)))
    return np.concatenate([np.asarray(run(params, jnp.asarray(voxels[s]))) for s in _batches(len(voxels), batch)])


def reconstruction_scores(prob: np.ndarray, voxels: np.ndarray, thresholds,
                          overlap: tuple[float, float] | None = None) -> dict:
    """Mean IoU and the pooled true / false positive rates at each threshold ("iou@t",
    "true_positive_rate@t", "false_positive_rate@t"; "overlap@t" too, the mean Tversky index with the
    `overlap` weights of the run's loss when it has them), the threshold a run chooses from them
    (`metrics.choose_threshold`), and at that threshold the per-shape IoUs and the rates."""
    per_threshold = metrics.threshold_scores(prob, voxels, thresholds, overlap)
    out = {name: float(np.mean(per_shape)) for name, per_shape in per_threshold.items()}
    for t in thresholds:
        tpr, fpr = metrics.voxel_rates(prob > t, voxels)
        out.update({f"true_positive_rate@{t}": float(tpr), f"false_positive_rate@{t}": float(fpr)})
    threshold, best = metrics.choose_threshold(out)
    return {**out, "threshold": threshold, "iou": best, "per_shape_iou": np.asarray(per_threshold[f"iou@{threshold}"]),
            "true_positive_rate": out[f"true_positive_rate@{threshold}"],
            "false_positive_rate": out[f"false_positive_rate@{threshold}"]}


def score_paths(packed: jax.Array, start: jax.Array, end: jax.Array, reference_bits, reference_counts) -> dict:
    """The per-path arrays the summary is made of, for P packed paths (P, T, 32, 32) between the packed
    inputs `start` and `end`: lowest step IoU, share of right-way steps, midpoint novelty and the
    share of the midpoint in its largest piece."""
    steps = packed.shape[1]
    scores = path_scores(packed, start, end)
    scores.update(midpoint_novelty(packed, reference_bits, reference_counts))
    mids = np.asarray(unpack_voxels(packed[:, steps // 2]))
    scores["midpoint_largest_part"] = np.array([largest_part(m) for m in mids])
    return {k: np.asarray(scores[k]) for k in ("smoothness", "monotonicity", "novelty_iou", "midpoint_largest_part")}


def summarise(parts: list[dict]) -> dict:
    """score_paths of every batch -> the median lowest consecutive-step IoU, the share of paths at least
    SMOOTH, the share monotone, the share whose midpoint is one piece, the median novelty."""
    s = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return {
        "paths": len(s["smoothness"]),
        "median_smoothness": float(np.median(s["smoothness"])),
        "fraction_smooth": float(np.mean(s["smoothness"] >= SMOOTH)),
        "fraction_monotone": float(np.mean(s["monotonicity"] == 1.0)),
        "fraction_one_piece": float(np.mean(s["midpoint_largest_part"] >= ONE_PIECE)),
        "median_novelty_iou": float(np.median(s["novelty_iou"])),
    }


def path_summary(model: models.Autoencoder, params, voxels: np.ndarray, reference: np.ndarray, *,
                 thresholds: tuple[float, ...], steps: int = 11, batch_pairs: int = 256) -> list[dict]:
    """`summarise` of the paths of every unique pair (i < j) of `voxels`, decoded by the model once and
    thresholded at each of `thresholds` (one summary each, in order); novelty against the `reference`
    (training) shapes. Needs two shapes."""
    n = len(voxels)
    if n < 2:
        raise ValueError(f"path scores need at least 2 shapes, got {n}")
    encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))

    @jax.jit
    def decode(p, latents):
        prob = jax.nn.sigmoid(model.apply(p, latents, method=models.Autoencoder.decode))
        return [pack_voxels(prob > t) for t in thresholds]

    z = jnp.concatenate([encode(params, jnp.asarray(voxels[s])) for s in _batches(n, 256)])
    inputs = pack_voxels(jnp.asarray(voxels))
    bits, counts = reference_matrix(jnp.asarray(reference))
    i_all, j_all = pair_list(n, "unique").T
    parts = [[] for _ in thresholds]
    for s in _batches(len(i_all), batch_pairs):
        i, j = jnp.asarray(i_all[s], jnp.int32), jnp.asarray(j_all[s], jnp.int32)
        latents = interpolate_pairs(z, i, j, steps=steps, implementation="xla")  # a few pairs: no kernel needed
        p = len(i_all[s])
        for part, packed in zip(parts, decode(params, latents.reshape(p * steps, *z.shape[1:]))):
            part.append(score_paths(packed.reshape(p, steps, 32, 32), inputs[i], inputs[j], bits, counts))
    return [summarise(part) for part in parts]
