"""Run a fused lerp_decode kernel once, for a profiler to attach to.

    python -m benchmarks.profile_lerp_decode --n=50 [--implementation=mosaic] [--launch=programs=528,rows=4] \
        [--decoder_features=64,64]

One launch of Algorithm 1's decode for N random latents, every ordered pair, 11 steps, by the Triton
(default) or the Mosaic GPU kernel, with its launch dataclass's knobs given as k=v (none: the launch
the kernel runs by default for these widths); under Nsight Compute select the kernel named
`lerp_decode`. Needs a CUDA GPU (elsewhere the kernel would only interpret).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import app, flags

from lerpnet import models
from lerpnet.allpairs.shapes import pair_list
from lerpnet.ops.lerp_decode import lerp_decode
from lerpnet.ops.lerp_decode.api import IMPLEMENTATIONS, KERNELS

_N = flags.DEFINE_integer("n", 4, "latents N; the launch decodes N^2 pairs x 11 steps", lower_bound=1)
_IMPLEMENTATION = flags.DEFINE_enum("implementation", "triton", KERNELS, "the kernel to run")
_LAUNCH = flags.DEFINE_list("launch", [], "the kernel's launch knobs as k=v, e.g. programs=528,rows=4")
_FEATURES = flags.DEFINE_list("decoder_features", ["16", "32"], "the decoder's (C0, C1) channels")


def main(argv):
    del argv
    if jax.default_backend() != "gpu":
        raise SystemExit("profile_lerp_decode needs a CUDA GPU (the kernel only interprets elsewhere)")
    implementation = _IMPLEMENTATION.value
    launch = IMPLEMENTATIONS[implementation].LAUNCH.parse(_LAUNCH.value) if _LAUNCH.value else None
    features = tuple(int(c) for c in _FEATURES.value)
    model = models.Autoencoder(models.model_config(decoder_features=features))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    n = _N.value
    z = jax.random.normal(jax.random.key(1), (n, 2, 2, 2, 8))
    i, j = pair_list(n, "all").T
    jax.block_until_ready(lerp_decode(model, params, z, i, j, implementation=implementation, launch=launch))
    print(f"ran {implementation} {launch or 'at its default launch'} N = {n}, decoder_features = {features}")


if __name__ == "__main__":
    app.run(main)
