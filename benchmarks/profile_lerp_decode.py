"""Run the fused Triton lerp_decode kernel once, for a profiler to attach to.

    python -m benchmarks.profile_lerp_decode --n=50 [--launch=programs=528,rows=4] [--decoder_features=64,64]

One launch of Algorithm 1's decode for N random latents, every ordered pair, 11 steps, with the
TritonLaunch knobs given as k=v (none: the launch the kernel runs by default for these widths,
`default_launch`); under Nsight Compute select the kernel named `lerp_decode`. Needs a CUDA GPU
(elsewhere the kernel would only interpret).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from absl import app, flags

from lerpnet import models
from lerpnet.allpairs.shapes import pair_list
from lerpnet.ops.lerp_decode import TritonLaunch, lerp_decode
from lerpnet.ops.lerp_decode.triton import default_launch

_N = flags.DEFINE_integer("n", 4, "latents N; the launch decodes N^2 pairs x 11 steps", lower_bound=1)
_LAUNCH = flags.DEFINE_list("launch", [], "TritonLaunch knobs as k=v, e.g. programs=528,rows=4")
_FEATURES = flags.DEFINE_list("decoder_features", ["16", "32"], "the decoder's (C0, C1) channels")


def parse_launch(items: list[str]) -> TritonLaunch:
    """TritonLaunch from k=v strings; a one-line error naming a bad item."""
    knobs = {f.name for f in dataclasses.fields(TritonLaunch)}
    launch = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in knobs or not value.isdigit():
            raise ValueError(f"--launch item {item!r} is not k=<integer> for k in {', '.join(sorted(knobs))}")
        launch[key] = int(value)
    return TritonLaunch(**launch)


def main(argv):
    del argv
    if jax.default_backend() != "gpu":
        raise SystemExit("profile_lerp_decode needs a CUDA GPU (the kernel only interprets elsewhere)")
    launch = parse_launch(_LAUNCH.value) if _LAUNCH.value else None
    features = tuple(int(c) for c in _FEATURES.value)
    model = models.Autoencoder(models.model_config(decoder_features=features))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    launch = launch or default_launch(params)
    n = _N.value
    z = jax.random.normal(jax.random.key(1), (n, 2, 2, 2, 8))
    i, j = pair_list(n, "all").T
    jax.block_until_ready(lerp_decode(model, params, z, i, j, implementation="triton", launch=launch))
    print(f"ran {launch} N = {n}, decoder_features = {features}")


if __name__ == "__main__":
    app.run(main)
