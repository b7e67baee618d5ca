"""Interpolate-and-decode in one pass: latents and pairs in, thresholded, bit-packed 32^3 shapes out.

`lerp_decode(model, params, z, i, j)` packs decode((1 - t_s) z[i[p]] + t_s z[j[p]]) > logit for
every pair p and step t_s = s / (steps - 1), where logit = log(threshold / (1 - threshold)), i.e.
sigmoid(logit) > threshold (lerpnet.bitpack's layout, 4 KiB a shape). The decoder's first layer is
affine, so the fused implementations lerp two rows of H = fc(z) (computed once per shape) instead
of the latents, and only the packed bits leave the chip.

Implementations (one `implementation=` argument, as in lerpnet.ops.lerp):
- "triton": one Triton-lowered Pallas kernel (triton.py); interpret mode off the GPU.
- "mosaic": one Mosaic GPU Pallas kernel keeping the activations in shared memory (mosaic.py); interpret
  mode off the GPU.
- "xla": the same fused math in one jit (xla.py).
- "reference": the unfused definition, interpolate -> Autoencoder.decode -> threshold -> pack.
- None or "auto": on a Hopper GPU "mosaic" where it covers the model, on a GPU "triton" where it covers
  the model, "xla" otherwise.
`launch=` takes the implementation's frozen launch dataclass (TritonLaunch, MosaicLaunch, XlaLaunch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import models
from lerpnet.ops.common import check_latents, check_pairs, check_steps, interpret_off_gpu
from lerpnet.ops.lerp_decode import mosaic, reference, triton, xla
from lerpnet.ops.lerp_decode.common import all_pairs_index, step_span, threshold_logit

IMPLEMENTATIONS = {"triton": triton, "mosaic": mosaic, "xla": xla, "reference": reference}
KERNELS = ("triton", "mosaic")  # the implementations that are one Pallas kernel (interpret mode off the GPU)


def default_implementation(model: models.Autoencoder, params, platform: str) -> str:
    """The implementation None/"auto" runs: on a Hopper GPU the Mosaic GPU kernel where it covers the
    model's activation and widths (the fastest, results/bench_model/), else the Triton kernel where that
    covers them, else the fused XLA jit (faster than the unfused path everywhere)."""
    if platform == "gpu":
        if mosaic.on_hopper() and not mosaic.unsupported(model.config.activation, params):
            return "mosaic"
        if not triton.unsupported(model.config.activation, params):
            return "triton"
    return "xla"


def unknown_implementations(names) -> list:
    """The names among `names` that are no implementation (None and "auto" are: the default)."""
    return [name for name in names if name not in (None, "auto") and name not in IMPLEMENTATIONS]


def resolve_implementation(model: models.Autoencoder, params, implementation: str | None) -> str:
    """The implementation a name means here (None/"auto": `default_implementation` on this backend)."""
    if implementation in (None, "auto"):
        return default_implementation(model, params, jax.default_backend())
    if unknown_implementations([implementation]):
        raise ValueError(f"unknown implementation {implementation!r}: implementation must be one of "
                         f"{', '.join(IMPLEMENTATIONS)}, or None / 'auto'")
    return implementation


def resolve_launch(model: models.Autoencoder, params, implementation: str | None, launch=None) -> tuple[str, object]:
    """The implementation a name means here and the launch it runs: `launch`, checked against that
    implementation's launch type, or its `default_launch(params)` (None for one that takes no launch)."""
    implementation = resolve_implementation(model, params, implementation)
    module = IMPLEMENTATIONS[implementation]
    if launch is not None and (module.LAUNCH is None or not isinstance(launch, module.LAUNCH)):
        want = "no launch" if module.LAUNCH is None else module.LAUNCH.__name__
        raise ValueError(f"launch= for implementation {implementation!r} takes {want}, got {type(launch).__name__}")
    if launch is None and module.LAUNCH is not None:
        launch = module.default_launch(params)
    return implementation, launch


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int = 11, threshold: float = 0.5,
                step_range: tuple[int, int] | None = None, implementation: str | None = None,
                launch=None) -> jax.Array:
    """Decoded, thresholded, bit-packed interpolants: uint32 (P, steps, 32, 32).

    `out[p, s]` packs sigmoid(decode((1 - t_s) z[i[p]] + t_s z[j[p]])) > threshold. `step_range=
    (first, stop)` decodes only steps first..stop-1: (P, stop - first, 32, 32). Callable inside jit
    (i, j may be traced; steps, threshold, step_range must be Python values).
    """
    n, _ = check_latents(z)
    check_steps(steps)
    check_pairs(i, j, n)
    span = step_span(steps, step_range)
    logit = threshold_logit(threshold)
    name, launch = resolve_launch(model, params, implementation, launch)
    extra = {"interpret": interpret_off_gpu()} if name in KERNELS else {}
    i, j = jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32)
    return IMPLEMENTATIONS[name].lerp_decode(model, params, z, i, j, steps=steps, span=span, logit=logit,
                                             launch=launch, **extra)


def lerp_decode_all_pairs(model: models.Autoencoder, params, z, *, steps: int = 11, threshold: float = 0.5,
                          implementation: str | None = None, launch=None) -> jax.Array:
    """Algorithm 1's result for every ordered pair, (N, N, steps, 32, 32) packed, decoding each
    distinct shape once: N (N - 1) / 2 x (steps - 2) interpolants and the N shapes, not N^2 x steps
    (11,075 decodes instead of 27,500 at N = 50).

    Why this is the same function: step_weights is exactly symmetric (the weights of step s, swapped,
    are those of steps - 1 - s), so (i, j, s) and (j, i, steps - 1 - s) are one latent; t = 0 and 1
    are the shapes themselves; and every step of (i, i) is shape i. (A per-pair decode rounds
    u z_i + t z_i, which is z_i in exact arithmetic, so a voxel with a logit at the threshold may
    differ on the diagonal.)

    A program decoding in blocks needs no more than this function does: `lerp_decode(..., iu, ju,
    step_range=(1, steps - 1))` over blocks of the pairs i < j, the N shapes once as
    `lerp_decode(..., arange(N), arange(N), step_range=(0, 1))`, and
    `lerpnet.ops.lerp_decode.common.all_pairs_index(N, steps)` for where each (i, j, s) lands.
    """
    n, _ = check_latents(z)
    check_steps(steps)
    if steps < 3:
        raise ValueError(f"steps must be at least 3 (endpoints and an interior step), got {steps}")
    name, launch = resolve_launch(model, params, implementation, launch)

    def decode(i, j, span):
        return lerp_decode(model, params, z, i, j, steps=steps, threshold=threshold, step_range=span,
                           implementation=name, launch=launch)

    parts = [decode(np.arange(n), np.arange(n), (0, 1)).reshape(n, 32, 32)]
    iu, ju = np.triu_indices(n, 1)
    if len(iu):
        parts.insert(0, decode(iu, ju, (1, steps - 1)).reshape(-1, 32, 32))
    return jnp.take(jnp.concatenate(parts), jnp.asarray(all_pairs_index(n, steps)), axis=0)
