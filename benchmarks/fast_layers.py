"""Formulations of the decoder's transposed convolution (kernel 4, stride 2, 'SAME'), to compare.

`flax.linen.ConvTranspose(features, (4,)*3, (2,)*3, padding='SAME')` lowers to a convolution of the
input dilated by 2 (`lhs_dilation`): seven eighths of its multiply-adds hit inserted zeros. Per axis
the same layer is

    out[2s + p] = sum_{e in {0, 1}} x[s + p + e - 1] * W[p + 2e]        (p = output parity)

so each output parity is a small stride-1 convolution of the undilated input. `CONV_TRANSPOSE`
names the forms benchmarks/bench_model.py times layer by layer:

- "lax": `lax.conv_transpose`, what Flax runs (the plain form);
- "subpixel": lerpnet.layers' form, one stride-1 3x3x3 convolution to 8x the channels (zeros where a
  parity skips a tap, 27/8 of the useful multiply-adds) and a depth-to-space;
- "parity": eight exact stride-1 2x2x2 convolutions, one per output parity, interleaved.

All take the flax kernel as stored (DHWIO, `transpose_kernel=False`); tests/ops/test_lerp_decode.py
holds them equal to `flax.linen.ConvTranspose`.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp

from lerpnet import layers

_DN = ("NDHWC", "DHWIO", "NDHWC")
PARITIES = tuple(itertools.product((0, 1), repeat=3))  # (pd, ph, pw), pd slowest


def parity_taps(kernel: jax.Array, parity: tuple[int, int, int]) -> jax.Array:
    """The 2x2x2 sub-kernel one output parity uses: taps p + 2e per axis, e in {0, 1}."""
    pd, ph, pw = parity
    return kernel[pd::2, ph::2, pw::2]


def _conv(x, w, padding):
    return jax.lax.conv_general_dilated(x, w.astype(x.dtype), (1, 1, 1), padding, dimension_numbers=_DN)


def conv_transpose_subpixel(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """lerpnet.layers' sub-pixel form: one 3^3 stride-1 conv to 8x channels + depth-to-space."""
    y = layers.subpixel_conv_transpose(x, kernel.astype(x.dtype), 2)
    return y if bias is None else y + bias.astype(y.dtype)


def conv_transpose_parity(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """Transposed conv k4 s2 'SAME' as eight exact 2^3 stride-1 convs (one per output parity)."""
    d, h, w = x.shape[1:4]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
    parts = [_conv(xp[:, pd:pd + d + 1, ph:ph + h + 1, pw:pw + w + 1], parity_taps(kernel, (pd, ph, pw)), "VALID")
             for pd, ph, pw in PARITIES]
    b, c = x.shape[0], kernel.shape[-1]
    y = jnp.stack(parts, axis=-2).reshape(b, d, h, w, 2, 2, 2, c).transpose(0, 1, 4, 2, 5, 3, 6, 7)
    y = y.reshape(b, 2 * d, 2 * h, 2 * w, c)
    return y if bias is None else y + bias.astype(y.dtype)


def conv_transpose_lax(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None) -> jax.Array:
    """What flax.linen.ConvTranspose(padding='SAME') computes: `lax.conv_transpose` (the plain form)."""
    y = jax.lax.conv_transpose(x, kernel.astype(x.dtype), (2, 2, 2), "SAME", dimension_numbers=_DN)
    return y if bias is None else y + bias.astype(y.dtype)


CONV_TRANSPOSE = {"lax": conv_transpose_lax, "subpixel": conv_transpose_subpixel, "parity": conv_transpose_parity}
