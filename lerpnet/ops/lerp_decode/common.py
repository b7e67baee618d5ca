"""What the lerp_decode implementations share: the decoder's parameters, H = fc(z), the threshold as a
logit, the span of steps to decode, and where the all-pairs result finds each (i, j, s)."""

from __future__ import annotations

import itertools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

GRID = 8  # the decoder's first spatial grid (8^3); up1 -> 16^3, up2 -> 32^3
PARITIES = tuple(itertools.product((0, 1), repeat=3))  # (d, h, w) parities or taps, index 4 d + 2 h + w


def decoder_params(params) -> dict:
    """The decoder's parameters, checked to be the fused path's shape: 4^3 kernels, 1 output channel."""
    dec = params["params"]["decoder"]
    k = dec["up1"]["kernel"].shape[0]
    if k != 4 or dec["up2"]["kernel"].shape[-1] != 1:
        raise ValueError(f"the fused decoder needs kernel size 4 and 1 output channel, got kernel {k}")
    return dec


def decoder_channels(params) -> tuple[int, int]:
    """The decoder's (C0, C1): up1's input and output channels."""
    return tuple(int(c) for c in decoder_params(params)["up1"]["kernel"].shape[-2:])


def up1_parity_taps(params) -> jax.Array:
    """up1's 4^3 kernel regrouped (8 parities p, 8 taps e, C0, C1): output parity p of the 16-grid sums,
    per axis, the input read at 8-grid shift p + e - 1 times W[p + 2 e] (the fused kernels' sub-pixel form)."""
    w1 = decoder_params(params)["up1"]["kernel"]
    return jnp.stack([jnp.stack([w1[pd + 2 * ed, ph + 2 * eh, pw + 2 * ew] for ed, eh, ew in PARITIES])
                      for pd, ph, pw in PARITIES])


def fc_rows(params, z: jax.Array) -> jax.Array:
    """H = fc(z) before the activation: (N, 8, 8, 8, C0) float32, lerped per interpolant.

    The first layer is affine, so fc((1 - t) z_i + t z_j) = (1 - t) fc(z_i) + t fc(z_j).
    """
    dec = decoder_params(params)
    n = z.shape[0]
    h = z.reshape(n, -1).astype(jnp.float32) @ dec["fc"]["kernel"] + dec["fc"]["bias"]
    return h.reshape(n, GRID, GRID, GRID, -1)


def threshold_logit(threshold) -> float:
    """The logit log(t / (1 - t)) above which a voxel is on: sigmoid(logit) > t."""
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number strictly between 0 and 1, got {threshold!r}")
    return math.log(threshold / (1.0 - threshold))


def step_span(steps: int, step_range: tuple[int, int] | None) -> tuple[int, int]:
    """(first, stop) of the steps to decode: all of them, or `step_range` checked against `steps`."""
    first, stop = step_range or (0, steps)
    if not 0 <= first < stop <= steps:
        raise ValueError(f"step_range must satisfy 0 <= first < stop <= steps={steps}, got {step_range}")
    return int(first), int(stop)


def all_pairs_index(n: int, steps: int) -> np.ndarray:
    """(N, N, steps) rows into [interior steps 1..steps-2 of the pairs i < j (row-major triu order) ;
    the N shapes]: where every ordered (i, j, s) finds its decoded shape."""
    pair = np.full((n, n), -1)
    iu, ju = np.triu_indices(n, 1)
    pair[iu, ju] = np.arange(len(iu))
    i, j, s = np.meshgrid(np.arange(n), np.arange(n), np.arange(steps), indexing="ij")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    interior = (pair[lo, hi] * (steps - 2) + np.where(i < j, s, steps - 1 - s) - 1)
    shape = len(iu) * (steps - 2) + np.where(s == steps - 1, j, i)
    return np.where((i != j) & (s > 0) & (s < steps - 1), interior, shape)
