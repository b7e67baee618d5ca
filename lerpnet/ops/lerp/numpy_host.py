"""All-pairs interpolation in NumPy on the host: no JAX in the hot path, NumPy arrays in and out."""

from __future__ import annotations

import numpy as np


def _lerp_rows(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """out[..., s, :] = (1 - t_s) a + t_s b for broadcastable (..., 64) rows; float32 arithmetic.

    Written step by step into one preallocated float32 buffer, so no (..., steps, 64) temporaries;
    the weights are the correctly rounded float32 quotients the kernels use.
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


def all_pairs(z: np.ndarray, *, steps: int) -> np.ndarray:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): (N, N, steps, 64) in z's dtype."""
    return _lerp_rows(z[:, None, :], z[None, :, :], steps)


def pairs(a: np.ndarray, b: np.ndarray, *, steps: int) -> np.ndarray:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): (P, steps, 64) in a's dtype."""
    return _lerp_rows(a, b, steps)
