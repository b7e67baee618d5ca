"""A supervised interpolation regulariser: decoded latent mixes are trained toward the morph of their
endpoints' signed distance fields.

A plain autoencoder leaves the decoder free between training latents, and its linear paths jump:
a thin part vanishes in one step, a mix falls apart into pieces. Here the mix alpha z + (1 - alpha) z'
of a batch shape and its partner (`acai.interpolants`) is decoded and scored, with the reconstruction
loss, against the shape where alpha d + (1 - alpha) d' < 0, d being each target's signed Euclidean
distance to its surface (negative inside, `lerpnet.distance`). Along alpha each voxel of that morph
flips at most once, so its paths are monotone by construction, and the voxels two shapes disagree on
flip at different alphas (by their distances), so consecutive steps change evenly; parts grow and
shrink, they do not blink. Measured on configs/modelnet_chairs.py (one seed, results/ablate_training/):
weight 1.0 made the decoder's own paths less monotone and more often in pieces, and lowered the IoU,
so it is off there.
"""

from __future__ import annotations

import jax
import ml_collections

from lerpnet import acai, distance


def morph_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        dict(
            weight=0.0,  # weight of the morph term beside the reconstruction loss; 0 = off
        )
    )
    cfg.update(overrides)
    return cfg


def morph_targets(targets: jax.Array, alpha: jax.Array) -> jax.Array:
    """The morph matching `acai.interpolants`: shape i at alpha_i toward its partner, full where
    alpha d_i + (1 - alpha) d_partner < 0 (the distances mixed as the latents are)."""
    return acai.mix_with_partner(distance.signed_distance(targets), alpha) < 0
