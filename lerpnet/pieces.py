"""The pieces term: decoded latent mixes are trained to hold together.

A path's midpoint counts as one piece when its largest face-connected part holds 95% of its full
voxels (benchmarks.trained_scores). Without this term about one validation midpoint in nine falls
apart on configs/modelnet_chairs.py: a leg or slat of one chair shrinks away from the seat while the
other chair's grows in elsewhere, and what is left floats. No differentiable loss sees connectivity, so
this term finds it on the device. Each decoded mix of a batch shape and its partner
(`acai.interpolants`) is thresholded and its face-connected parts are labelled; then
- stray: the voxels outside the largest part are pushed toward empty with the cross-entropy (per
  shape, over its full voxels);
- lost mass: the mix's soft occupancy (its summed probabilities) is held up to the same mix of its
  ends' (the batch's reconstructions, held fixed), so that the decoder cannot satisfy the first part by
  thinning its mixes, which breaks them into more pieces, down to empty shapes (measured without it:
  results/ablate_training/README.md). The push up falls on the uncertain voxels at the surface, where
  growth joins pieces.
Measured (results/ablate_training/pieces/): without the mass part, weights 0.3 and 1 on
configs/modelnet_chairs.py emptied the mixes; with it, weight 0.3 took that config's one-piece
midpoints from 89.0% to 99.8% for 0.008 of validation IoU (three seeds, decoder widths (64, 64)), and from
88.1% to 98.8% with the study's widths (16, 32) that the config has now, so the config turns it on
(`pieces.weight` 0.3; the library default is 0, off).

The labelling spreads each voxel's label, the largest in its part, along whole runs of full voxels
(a running maximum along each axis, in both directions) until no label changes: a part is labelled
in as many sweeps as its longest chain of turns between axes, a handful for a chair, where spreading
to neighbours only would take as many as its longest path in voxels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from lerpnet import acai
from lerpnet.ops.lerp_decode.common import threshold_logit


def pieces_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        dict(
            weight=0.0,  # weight of the pieces term beside the reconstruction loss; 0 = off
            threshold=0.5,  # occupancy probability above which a voxel of a decoded mix is full
        )
    )
    cfg.update(overrides)
    return cfg


def _spread_along(labels: jax.Array, full: jax.Array, axis: int) -> jax.Array:
    """Each run of full voxels along `axis` takes the largest label in it (empty voxels stay 0).

    A running maximum along a line would leak from one run into the next; adding the run's index
    (counted in the direction of the maximum) times (largest label + 1) to its labels keeps every run's
    keys above those of the runs before it, so each maximum stays inside its run."""
    stride = math.prod(full.shape[1:]) + 1  # labels are 1..n
    before = jnp.concatenate([jnp.zeros_like(jax.lax.slice_in_dim(full, 0, 1, axis=axis)),
                              jax.lax.slice_in_dim(full, 0, -1, axis=axis)], axis=axis)
    run = jnp.cumsum(full & ~before, axis=axis, dtype=jnp.int32)  # 1, 2, ... from the line's start
    offset = run * stride
    prefix = jax.lax.cummax(jnp.where(full, labels + offset, 0), axis=axis) - offset
    offset = (jax.lax.slice_in_dim(run, -1, None, axis=axis) + 1 - run) * stride  # runs counted from the end
    whole = jax.lax.cummax(jnp.where(full, prefix + offset, 0), axis=axis, reverse=True) - offset
    return jnp.where(full, whole, 0)


def part_labels(full: jax.Array) -> jax.Array:
    """(B, R, R, R) bool -> int32 labels: every face-connected part of full voxels takes the largest
    of its voxels' indices 1..R^3; empty voxels 0."""
    n = math.prod(full.shape[1:])
    start = jnp.where(full, jnp.arange(1, n + 1, dtype=jnp.int32).reshape(full.shape[1:]), 0)

    def sweep(labels):
        for axis in range(1, full.ndim):
            labels = _spread_along(labels, full, axis)
        return labels

    def unsettled(carry):
        labels, previous = carry
        return jnp.any(labels != previous)

    labels, _ = jax.lax.while_loop(unsettled, lambda carry: (sweep(carry[0]), carry[0]),
                                   (sweep(start), start))
    return labels


def outside_largest_part(full: jax.Array) -> jax.Array:
    """(B, R, R, R) bool -> the full voxels outside each grid's largest face-connected part (of two as
    large, the one with the smaller label); all False for an empty grid or one in one piece."""
    labels = part_labels(full)
    flat = labels.reshape(labels.shape[0], -1)
    counts = jax.vmap(lambda row: jnp.bincount(row, length=flat.shape[1] + 1))(flat).at[:, 0].set(0)
    largest = jnp.argmax(counts, axis=1)
    return full & (labels != largest.reshape((-1,) + (1,) * (full.ndim - 1)))


def _soft_occupancy(logits: jax.Array) -> jax.Array:
    """(B, ...) logits -> (B,) summed occupancy probabilities, in float32."""
    return jnp.sum(jax.nn.sigmoid(logits.astype(jnp.float32)), axis=tuple(range(1, logits.ndim)))


def pieces_term(logits: jax.Array, threshold: float, mass: jax.Array) -> jax.Array:
    """Mean over shapes of two parts (module docstring), 0 for a shape in one piece with its `mass`:
    the cross-entropy toward empty of the voxels outside the largest part of `logits` > logit(threshold),
    over the shape's full voxels (+ 1); the soft occupancy (sum of probabilities) below `mass` (B,), over
    mass + 1."""
    full = jax.lax.stop_gradient(logits) > threshold_logit(threshold)
    outside = outside_largest_part(full)
    axes = tuple(range(1, logits.ndim))
    logits = logits.astype(jnp.float32)
    stray = jnp.sum(jnp.where(outside, jax.nn.softplus(logits), 0.0), axis=axes) / (jnp.sum(full, axis=axes) + 1.0)
    lost = jax.nn.relu(mass - _soft_occupancy(logits)) / (mass + 1.0)
    return jnp.mean(stray + lost)


def batch_pieces_term(decode: Callable[[jax.Array], jax.Array], z: jax.Array, logits: jax.Array, key: jax.Array,
                      cfg: ml_collections.ConfigDict) -> jax.Array:
    """The term of a training batch: its latents `z` mixed with their partners' (alpha from `key`),
    decoded by `decode` (latents -> logits), each held to the mix of its ends' soft occupancies (the
    batch's reconstruction `logits`, held fixed: the reconstruction loss owns them)."""
    mixed, alpha = acai.interpolants(z, key)
    ends = _soft_occupancy(jax.lax.stop_gradient(logits))
    return pieces_term(decode(mixed), cfg.threshold, acai.mix_with_partner(ends, alpha))
