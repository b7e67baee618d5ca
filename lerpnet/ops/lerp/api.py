"""All-pairs latent interpolation: one API over equivalent implementations (the study's Algorithm 1).

For N latents z and T steps t_s = s / (T - 1), `interpolate` returns
`out[i, j, s] = (1 - t_s) z[i] + t_s z[j]` for every pair (i, j); `interpolate_pairs` does the same
for a chosen list of pairs (what a streaming program calls block by block). Latents are (N, 64),
(N, 8, 8) or (N, 2, 2, 2, 8), float32 or bfloat16; arithmetic is float32, the result is in z's dtype.

Implementations (one `implementation=` argument; all compute the same function):
- "mosaic_smem": Mosaic GPU kernel staging 8x8 latent tiles in shared memory (mosaic_smem.py).
- "mosaic_global": the same kernel reading latents from global memory, no staging (mosaic_global.py).
- "triton": Triton-lowered `pallas_call` (triton.py).
- "xla": jitted jnp broadcasting, also the reference the kernels are checked against (xla.py).
- "numpy": pure NumPy on the host, no JAX in the hot path; returns a NumPy array (numpy_host.py).
- None or "auto": `default_implementation(platform, pairs)`, the fastest correct one measured there.
Off the GPU the Pallas kernels run in interpret mode (slow; for tests). Each kernel module's
`all_pairs` / `pairs` take a frozen launch dataclass (`launch=`) for other block sizes.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet.ops.common import check_latents, check_pairs, check_steps, interpret_off_gpu
from lerpnet.ops.lerp import mosaic_global, mosaic_smem, numpy_host, triton, xla

IMPLEMENTATIONS = {"mosaic_smem": mosaic_smem, "mosaic_global": mosaic_global, "triton": triton, "xla": xla,
                   "numpy": numpy_host}
PALLAS_KERNELS = ("mosaic_smem", "mosaic_global", "triton")  # interpreted off the GPU

# Up to this many pairs (N = 50 all-pairs) the default on the GPU is the Triton kernel, above it the
# shared-memory one (results/sweep_sizes/nvidia_h100_80gb_hbm3/sweep.md).
SMALL_PAIRS = 2500


def default_implementation(platform: str, pairs: int) -> str:
    """The implementation None/"auto" runs on `platform` for an output of `pairs` (i, j) pairs.

    Measured on an H100 (jax 0.11.2): at N <= 50 (pairs <= 2500) every kernel is launch-bound at
    11-27 us and the Triton `pallas_call` was fastest at 5 of the 6 study sizes in both dtypes; from
    N = 64 up the shared-memory kernel was fastest or tied, and 1.1x (float32) / 1.8x (bfloat16)
    faster than XLA at N >= 2048. On the CPU the Pallas kernels only interpret and XLA beat NumPy
    at every size measured (results/sweep_sizes/cpu/sweep.md).
    """
    if platform != "gpu":
        return "xla"
    return "triton" if pairs <= SMALL_PAIRS else "mosaic_smem"


def _resolve(implementation: str | None, pairs: int) -> str:
    if implementation in (None, "auto"):
        return default_implementation(jax.default_backend(), pairs)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}; choose one of "
                         f"{', '.join(IMPLEMENTATIONS)}, or None / 'auto'")
    return implementation


def _kernel_args(name: str) -> dict:
    return {"interpret": interpret_off_gpu()} if name in PALLAS_KERNELS else {}


def _host(a: Any) -> np.ndarray:
    if isinstance(a, jax.core.Tracer):
        raise ValueError('implementation="numpy" runs on the host and cannot be traced (called inside '
                         'jax.jit); use "xla" or a Pallas kernel there')
    return np.asarray(a)


def interpolate(z: Any, steps: int = 11, implementation: str | None = None) -> jax.Array | np.ndarray:
    """All pairs: (N, N, steps, *latent) with out[i, j, s] = (1 - t_s) z[i] + t_s z[j], in z's dtype."""
    n, latent = check_latents(z)
    check_steps(steps)
    name = _resolve(implementation, n * n)
    rows = (_host(z) if name == "numpy" else jnp.asarray(z)).reshape(n, -1)
    out = IMPLEMENTATIONS[name].all_pairs(rows, steps=steps, **_kernel_args(name))
    return out.reshape(n, n, steps, *latent)


def interpolate_pairs(z: Any, i: Any, j: Any, steps: int = 11,
                      implementation: str | None = None) -> jax.Array | np.ndarray:
    """Chosen pairs: (P, steps, *latent) with out[p, s] = (1 - t_s) z[i[p]] + t_s z[j[p]].

    i, j: integer index arrays of one shape (P,). Indices are checked against N when they are concrete
    (not traced); inside jit an out-of-range index is clamped, as jnp indexing does.
    """
    n, latent = check_latents(z)
    check_steps(steps)
    p = check_pairs(i, j, n)
    name = _resolve(implementation, p)
    if name == "numpy":
        rows = _host(z).reshape(n, -1)
        a, b = rows[_host(i)], rows[_host(j)]
    else:
        rows = jnp.asarray(z).reshape(n, -1)
        a, b = rows[jnp.asarray(i)], rows[jnp.asarray(j)]
    out = IMPLEMENTATIONS[name].pairs(a, b, steps=steps, **_kernel_args(name))
    return out.reshape(p, steps, *latent)
