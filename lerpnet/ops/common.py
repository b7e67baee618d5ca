"""What the interpolation kernels share: the row layout, remainder handling, interpret-mode settings.

Every kernel works on latents flattened to rows of 64 numbers (one 8x8 tile each). Ragged sizes are
handled without masks: a block's start is clamped to `n - block`, so the last block overlaps its
neighbour and rewrites a few outputs with identical values, and nothing is read or written out of
bounds. Inputs with fewer rows than one block are padded (the output is tiny then) and sliced back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental.pallas import mosaic_gpu as plgpu

LATENT_SIZE = 64


def pad_rows(z: jax.Array, rows: int) -> jax.Array:
    """`z` with zero rows appended up to `rows` rows (no-op when it already has that many)."""
    return jnp.pad(z, ((0, max(rows - z.shape[0], 0)), (0, 0)))


def clamped_start(axis_name: str, block: int, n: int) -> jax.Array:
    """First row of this program's block along a grid axis, clamped so the block ends inside `n`."""
    return jnp.minimum(jax.lax.axis_index(axis_name) * block, n - block)


def step_weights(s: jax.Array | int, steps: int) -> tuple[jax.Array, jax.Array]:
    """(1 - t_s, t_s) for t_s = s / (steps - 1), each a correctly rounded float32 quotient.

    Computing 1 - t_s as (steps - 1 - s) / (steps - 1) rather than 1 - float32(t_s) keeps the small
    weight near t = 1 accurate to half an ulp (1 - t would carry t's absolute rounding error).
    """
    last = jnp.float32(steps - 1)
    s = jnp.asarray(s, jnp.float32)
    return (last - s) / last, s / last


def mosaic_interpret(interpret: bool) -> plgpu.InterpretGPUParams | None:
    """Mosaic GPU interpret settings: simulated SMEM/TMA on the CPU, fresh buffers filled with NaN
    (so an output the kernel forgets to write fails the check) and out-of-bounds reads raising."""
    if not interpret:
        return None
    return plgpu.InterpretGPUParams(uninitialized_memory="nan", out_of_bounds_reads="raise")
