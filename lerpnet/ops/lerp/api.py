"""All-pairs latent interpolation: one API over equivalent backends (the study's Algorithm 1).

For N latents z and T steps t_s = s / (T - 1), `interpolate` returns
`out[i, j, s] = (1 - t_s) z[i] + t_s z[j]` for every pair (i, j); `interpolate_pairs` does the same
for a chosen list of pairs (what a streaming pipeline calls block by block). Latents are (N, 64),
(N, 8, 8) or (N, 2, 2, 2, 8), float32 or bfloat16; arithmetic is float32, the result is in z's dtype.

Backends (one `backend=` argument; all compute the same function):
- "pallas": Mosaic GPU kernel staging 8x8 latent tiles in shared memory (lerpnet.kernels.lerp_smem).
- "pallas_global": the same kernel reading latents from global memory, no staging (lerp_global).
- "pallas_triton": Triton-lowered `pallas_call` (lerp_triton).
- "jnp": jitted XLA broadcasting (also the reference the kernels are checked against).
- "numpy": pure NumPy on the CPU, no JAX in the hot path; returns a NumPy array.
- "auto": `auto_backend(platform, pairs)`, the fastest correct backend measured there.
Off the GPU the Pallas backends run in interpret mode (slow; for tests).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from lerpnet.ops.lerp import mosaic_global as lerp_global, mosaic_smem as lerp_smem, triton as lerp_triton
from lerpnet.ops.common import step_weights

LATENT_SHAPES = ((64,), (8, 8), (2, 2, 2, 8))
DTYPES = (np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16))
PALLAS_BACKENDS = {"pallas": lerp_smem, "pallas_global": lerp_global, "pallas_triton": lerp_triton}
BACKENDS = (*PALLAS_BACKENDS, "jnp", "numpy")


# Up to this many pairs (N = 50 all-pairs) "auto" runs the Triton kernel on the GPU, above it the
# shared-memory one (results/sweep_sizes/nvidia_h100_80gb_hbm3/sweep.md).
SMALL_PAIRS = 2500


def auto_backend(platform: str, pairs: int) -> str:
    """The backend "auto" runs on `platform` for an output of `pairs` (i, j) pairs.

    Measured on an H100 (jax 0.11.2): at N <= 50 (pairs <= 2500) every backend is launch-bound at
    11-27 us and the Triton `pallas_call` was fastest at 5 of the 6 study sizes in both dtypes; from
    N = 64 up the shared-memory kernel was fastest or tied, and 1.1x (float32) / 1.8x (bfloat16)
    faster than XLA at N >= 2048. On the CPU the Pallas kernels only interpret and XLA ("jnp") beat
    NumPy at every size measured (results/sweep_sizes/cpu/sweep.md).
    """
    if platform != "gpu":
        return "jnp"
    return "pallas_triton" if pairs <= SMALL_PAIRS else "pallas"


def _check_latents(z: Any) -> tuple[int, tuple[int, ...]]:
    """(N, latent shape) of a valid latent array; ValueError naming what is wrong otherwise."""
    shape, dtype = getattr(z, "shape", None), getattr(z, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"z must be an array of latents, got {type(z).__name__}")
    if len(shape) < 2 or tuple(shape[1:]) not in LATENT_SHAPES:
        raise ValueError(f"z must have shape (N, 64), (N, 8, 8) or (N, 2, 2, 2, 8), got {tuple(shape)}")
    if shape[0] == 0:
        raise ValueError("z holds no latents (N = 0); interpolation needs at least one")
    if np.dtype(dtype) not in DTYPES:
        raise ValueError(f"z must be float32 or bfloat16, got {np.dtype(dtype)}")
    return shape[0], tuple(shape[1:])


def _check_steps(steps: Any) -> None:
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 (t runs from 0 to 1 inclusive), got {steps!r}")


def _resolve(backend: str, pairs: int) -> str:
    if backend == "auto":
        return auto_backend(jax.default_backend(), pairs)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}, auto")
    return backend


def _interpret() -> bool:
    return jax.default_backend() != "gpu"


def _weights(steps: int) -> tuple[jax.Array, jax.Array]:
    """(1 - t_s, t_s) in float32 as the kernels compute them, shaped to broadcast over (..., steps, 64)."""
    u, t = step_weights(jnp.arange(steps), steps)
    return u[:, None], t[:, None]


@functools.partial(jax.jit, static_argnames="steps")
def jnp_all_pairs(z: jax.Array, steps: int) -> jax.Array:
    """XLA reference: out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64), float32 arithmetic."""
    u, t = _weights(steps)
    x = z.astype(jnp.float32)[:, None, None, :]
    y = z.astype(jnp.float32)[None, :, None, :]
    return (u * x + t * y).astype(z.dtype)


@functools.partial(jax.jit, static_argnames="steps")
def jnp_pairs(a: jax.Array, b: jax.Array, steps: int) -> jax.Array:
    """XLA reference: out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64)."""
    u, t = _weights(steps)
    return (u * a.astype(jnp.float32)[:, None, :] + t * b.astype(jnp.float32)[:, None, :]).astype(a.dtype)


def numpy_pairs(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """NumPy: out[..., s, :] = (1 - t_s) a + t_s b for broadcastable (..., 64) rows; float32 arithmetic.

    Written step by step into one preallocated float32 buffer, so no (..., steps, 64) temporaries.
    """
    x, y = a.astype(np.float32), b.astype(np.float32)
    shape = np.broadcast_shapes(x.shape, y.shape)
    out = np.empty((*shape[:-1], steps, shape[-1]), np.float32)
    scratch = np.empty(shape, np.float32)
    for s in range(steps):
        u, t = np.float32(steps - 1 - s) / np.float32(steps - 1), np.float32(s) / np.float32(steps - 1)
        np.multiply(x, u, out=out[..., s, :])
        np.multiply(y, t, out=scratch)
        out[..., s, :] += scratch
    return out.astype(a.dtype, copy=False)


def _numpy_input(z: Any) -> np.ndarray:
    if isinstance(z, jax.core.Tracer):
        raise ValueError('backend="numpy" runs on the host and cannot be traced (called inside jax.jit); '
                         'use "jnp" or a Pallas backend there')
    return np.asarray(z)


def interpolate(z: Any, steps: int = 11, backend: str = "auto") -> jax.Array | np.ndarray:
    """All pairs: (N, N, steps, *latent) with out[i, j, s] = (1 - t_s) z[i] + t_s z[j], in z's dtype."""
    n, latent = _check_latents(z)
    _check_steps(steps)
    backend = _resolve(backend, n * n)
    if backend == "numpy":
        rows = _numpy_input(z).reshape(n, -1)
        return numpy_pairs(rows[:, None, :], rows[None, :, :], steps).reshape(n, n, steps, *latent)
    rows = jnp.asarray(z).reshape(n, -1)
    if backend == "jnp":
        out = jnp_all_pairs(rows, steps)
    else:
        out = PALLAS_BACKENDS[backend].all_pairs(rows, steps=steps, interpret=_interpret())
    return out.reshape(n, n, steps, *latent)


def interpolate_pairs(z: Any, i: Any, j: Any, steps: int = 11, backend: str = "auto") -> jax.Array | np.ndarray:
    """Chosen pairs: (P, steps, *latent) with out[p, s] = (1 - t_s) z[i[p]] + t_s z[j[p]].

    i, j: integer index arrays of one shape (P,). Indices are checked against N when they are concrete
    (not traced); inside jit an out-of-range index is clamped, as jnp indexing does.
    """
    n, latent = _check_latents(z)
    _check_steps(steps)
    for name, idx in (("i", i), ("j", j)):
        if not hasattr(idx, "shape"):
            raise ValueError(f"{name} must be an integer index array, got {type(idx).__name__}")
        if len(idx.shape) != 1 or not np.issubdtype(np.dtype(idx.dtype), np.integer):
            raise ValueError(f"{name} must be a 1-D integer array, got shape {tuple(idx.shape)} dtype {idx.dtype}")
        if not isinstance(idx, jax.core.Tracer) and idx.shape[0] and not 0 <= int(np.min(idx)) <= int(np.max(idx)) < n:
            raise ValueError(f"{name} holds indices outside [0, {n}) for N = {n} latents")
    if i.shape != j.shape:
        raise ValueError(f"i and j must have the same shape, got {tuple(i.shape)} and {tuple(j.shape)}")
    if i.shape[0] == 0:
        raise ValueError("no pairs given (i and j are empty)")
    p = i.shape[0]
    backend = _resolve(backend, p)
    if backend == "numpy":
        rows = _numpy_input(z).reshape(n, -1)
        return numpy_pairs(rows[_numpy_input(i)], rows[_numpy_input(j)], steps).reshape(p, steps, *latent)
    rows = jnp.asarray(z).reshape(n, -1)
    a, b = rows[jnp.asarray(i)], rows[jnp.asarray(j)]
    if backend == "jnp":
        out = jnp_pairs(a, b, steps)
    else:
        out = PALLAS_BACKENDS[backend].pairs(a, b, steps=steps, interpret=_interpret())
    return out.reshape(p, steps, *latent)
