"""The fast formulations of strided and transposed 3D convolution that lerpnet.models picks between.

XLA runs its lowering of strided / input-dilated convolutions far slower than these (the plain Flax
transposed convolution 16^3x32 -> 32^3x1 takes ~0.9 s per shape on a 2-core CPU); each function
equals `lax.conv_general_dilated` / `lax.conv_transpose(..., 'SAME')` on NDHWC inputs and DHWIO
kernels, so the layers keep Flax's parameters:

* "subpixel": a stride-s convolution is a space-to-depth of its padded input and a stride-1
  convolution with ceil(k/s) taps per axis; a stride-s transposed convolution is a stride-1
  convolution to s^3 x the channels (one group per output parity) and a depth-to-space.
* "matmul": one matmul over the taps' shifted views (convolution), or one matmul giving every input
  voxel's k^3 contributions, shifted and added per axis into the output parities (transposed).
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMS = ("NDHWC", "DHWIO", "NDHWC")


def _same_padding(n: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading padding of `lax.conv_general_dilated` along one axis."""
    if padding == "SAME":
        out = -(-n // stride)
        return out, max((out - 1) * stride + k - n, 0) // 2
    return (n - k) // stride + 1, 0


def _space_to_depth(x: jax.Array, kernel_size: int, stride: int, padding: str) -> tuple[jax.Array, int, int]:
    """Pad and regroup x so that the strided convolution becomes a stride-1 VALID one with `taps` taps.

    y[m] = sum_k W[k] xpad[s*m + k] and k = s*q + r: tap q of the blocks' channel group r.
    Returns the blocks (B, L, L, L, s^3*C) with channels (r1, r2, r3, c), the output length, taps.
    """
    b, n, cin = x.shape[0], x.shape[1], x.shape[-1]
    out, lo = _same_padding(n, kernel_size, stride, padding)
    taps = -(-kernel_size // stride)
    length = stride * (out + taps - 1)
    x = x[:, : length - lo, : length - lo, : length - lo]
    x = jnp.pad(x, [(0, 0)] + [(lo, length - lo - x.shape[1])] * 3 + [(0, 0)])
    blocks = length // stride
    x = x.reshape(b, blocks, stride, blocks, stride, blocks, stride, cin)
    return x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, blocks, blocks, blocks, stride**3 * cin), out, taps


def _blocked_kernel(kernel: jax.Array, stride: int) -> jax.Array:
    """(k,k,k,I,O) -> (q, q, q, s^3*I, O) with w[q1,q2,q3,(r1,r2,r3,i),o] = W[s*q1+r1, ...] (0 past k)."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    taps = -(-k // stride)
    w = jnp.pad(kernel, [(0, taps * stride - k)] * 3 + [(0, 0), (0, 0)])
    w = w.reshape(taps, stride, taps, stride, taps, stride, cin, cout).transpose(0, 2, 4, 1, 3, 5, 6, 7)
    return w.reshape(taps, taps, taps, stride**3 * cin, cout)


def subpixel_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (s,)*3, padding)` (NDHWC, DHWIO): space-to-depth + stride-1 conv."""
    blocks, _, _ = _space_to_depth(x, kernel.shape[0], stride, padding)
    return lax.conv_general_dilated(blocks, _blocked_kernel(kernel, stride), (1, 1, 1), "VALID", dimension_numbers=_DIMS)


def matmul_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """The same convolution as one matmul over patches (the taps' shifted views of the blocks, side by side)."""
    blocks, out, taps = _space_to_depth(x, kernel.shape[0], stride, padding)
    patches = jnp.concatenate([blocks[:, a:a + out, b:b + out, c:c + out]
                               for a, b, c in itertools.product(range(taps), repeat=3)], axis=-1)
    w = _blocked_kernel(kernel, stride).reshape(-1, kernel.shape[-1])
    return jnp.einsum("bxyzi,io->bxyzo", patches, w)


def _transposed_taps(kernel_size: int, stride: int) -> list[tuple[int, int, int]]:
    """(tap k, output parity r, input offset d) per axis of `lax.conv_transpose(..., 'SAME')`.

    lax.conv_transpose correlates W with the input dilated by s and padded by `before`, so
    y[s*m + r] = sum_k W[k] x[m + d] with d = (r + k - before) / s wherever that is an integer.
    """
    before = kernel_size - 1 if stride > kernel_size - 1 else -(-(kernel_size + stride - 2) // 2)
    return [(k, r, (r + k - before) // stride) for r in range(stride) for k in range(kernel_size)
            if (r + k - before) % stride == 0]


def _depth_to_space(y: jax.Array, stride: int) -> jax.Array:
    """(B, n, n, n, s, s, s, C) with parities after the position -> (B, s*n, s*n, s*n, C)."""
    b, n, c = y.shape[0], y.shape[1], y.shape[-1]
    return y.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, n * stride, n * stride, n * stride, c)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s,)*3, 'SAME')` (NDHWC, DHWIO): a stride-1 conv to s^3 x channels
    (one group per output parity), then depth-to-space."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    b, n = x.shape[0], x.shape[1]
    pairs = _transposed_taps(k, stride)
    lo, hi = -min(d for _, _, d in pairs), max(d for _, _, d in pairs)
    select = np.zeros((k, lo + hi + 1, stride), np.float32)  # select[k, j, r]: tap k feeds (tap j, parity r)
    for kk, r, d in pairs:
        select[kk, d + lo, r] = 1.0
    sel = jnp.asarray(select, kernel.dtype)
    w = jnp.einsum("adgio,abc,deh,gjk->bejichko", kernel, sel, sel, sel).reshape(
        lo + hi + 1, lo + hi + 1, lo + hi + 1, cin, stride**3 * cout)
    y = lax.conv_general_dilated(x, w, (1, 1, 1), [(lo, hi)] * 3, dimension_numbers=_DIMS)
    return _depth_to_space(y.reshape(b, n, n, n, stride, stride, stride, cout), stride)


def _shift(a: jax.Array, d: int, axis: int) -> jax.Array:
    """a[m + d] along `axis`, zero where m + d falls outside."""
    if d == 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (max(-d, 0), max(d, 0))
    return lax.slice_in_dim(jnp.pad(a, pad), max(d, 0), max(d, 0) + a.shape[axis], axis=axis)


def matmul_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """The same transposed convolution as one matmul (every input voxel's k^3 x O contributions), then
    per axis a shift-and-add of the taps into the output parities, then depth-to-space."""
    k = kernel.shape[0]
    y = jnp.einsum("bxyzi,ijklo->bxyzjklo", x, kernel.transpose(3, 0, 1, 2, 4))  # (B, n, n, n, k, k, k, O)
    pairs = _transposed_taps(k, stride)
    for axis in range(3):  # taps of spatial axis 1 + axis sit at 4 + axis; replace them by parities
        parity = [sum(_shift(lax.index_in_dim(y, kk, 4 + axis, keepdims=False), d, 1 + axis)
                      for kk, rr, d in pairs if rr == r) for r in range(stride)]
        y = jnp.stack(parity, axis=4 + axis)
    return _depth_to_space(y, stride)
