"""The unfused definition of lerp_decode: interpolated latents -> Autoencoder.decode -> threshold -> pack.

Slow and plain: it materialises every interpolated latent and runs the model's own decoder at float32
matmul precision, so it is what the fused implementations are checked against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lerpnet import models
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.lerp.api import interpolate_pairs

LAUNCH = None  # no launch knobs


def logits(model: models.Autoencoder, params, z, i, j, *, steps: int, span: tuple[int, int]) -> jax.Array:
    """float32 (P, stop - first, 32, 32, 32): decode((1 - t_s) z[i] + t_s z[j]) for s in span, at float32
    matmul precision on every device (a GPU's default is TF32)."""
    first, stop = span
    with jax.default_matmul_precision("float32"):
        lat = interpolate_pairs(z.astype(jnp.float32), i, j, steps=steps, implementation="xla")[:, first:stop]
        out = model.apply(params, lat.reshape(-1, *z.shape[1:]), method=models.Autoencoder.decode)
    return out.reshape(len(i), stop - first, 32, 32, 32)


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int, span: tuple[int, int], logit: float,
                launch: None = None) -> jax.Array:
    """Packed (P, stop - first, 32, 32): decode((1 - t_s) z[i] + t_s z[j]) > logit for s in span."""
    return pack_voxels(logits(model, params, z, i, j, steps=steps, span=span) > logit)
