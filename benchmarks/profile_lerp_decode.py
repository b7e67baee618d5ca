"""Run the fused decoder kernel once: `python3 bin/compile_fused.py programs=528,rows=4 [N]`.

`bin/device-results.sh profile` runs it under ncu: one launch of Algorithm 1's decode for N latents,
all N^2 pairs, 11 steps, with the launch's integer arguments of `lerp_decode_pallas` given as k=v.
"""

import sys

import jax
import jax.numpy as jnp

from lerpnet import models
from lerpnet.ops.lerp_decode import api as fused_decoder

launch = {k: int(v) for k, v in (item.split("=") for item in sys.argv[1].split(","))}
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
model = models.Autoencoder(models.model_config())
params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
z = jax.random.normal(jax.random.key(1), (n, 2, 2, 2, 8))
i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"))
jax.block_until_ready(fused_decoder.lerp_decode_pallas(params, z, i, j, **launch))
print("ran", launch, "N =", n)
