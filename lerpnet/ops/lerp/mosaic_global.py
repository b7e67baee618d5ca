"""All-pairs interpolation as a Mosaic GPU kernel that reads its latents from global memory.

The same outputs as `mosaic_smem`, but nothing is staged: every output row block is
computed from latents loaded straight from global memory and stored straight back, once per (i, s).
The study's "global memory" version (Table 2), kept for the comparison.

Why `z_rows` (N, block_j, 64) is passed in: Mosaic GPU cannot broadcast one 64-wide row across
`block_j` rows in registers, so XLA materialises each latent repeated `block_j` times (N * block_j
rows, negligible beside the N^2 * steps output) and the kernel loads row i as one (block_j, 64) read.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from lerpnet.ops.common import (Launch, clamped_start, mosaic_interpret, one_block, one_pairs_block, padded_kernel,
                                step_weights)


@dataclasses.dataclass(frozen=True)
class MosaicGlobalLaunch(Launch):
    """Launch knobs: all-pairs blocks of `block_i` x `block_j` rows; chosen pairs in blocks of
    `pairs_block` rows. (A `block_j` below 2 makes a 64-element register array, which Mosaic GPU's
    layout inference refuses at lowering.)"""

    block_i: int = 8
    block_j: int = 16
    pairs_block: int = 16


@padded_kernel(MosaicGlobalLaunch, one_block)
def all_pairs(z: jax.Array, *, steps: int, launch: MosaicGlobalLaunch, interpret: bool) -> jax.Array:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): returns (N, N, steps, 64) in z's dtype."""
    block_i, block_j = launch.block_i, launch.block_j
    n, d = z.shape

    @functools.partial(
        plgpu.kernel,
        out_type=jax.ShapeDtypeStruct((n, n, steps, d), z.dtype),
        grid=(pl.cdiv(n, block_i), pl.cdiv(n, block_j)),
        grid_names=("i", "j"),
        interpret=mosaic_interpret(interpret),
    )
    def kernel(z_gmem, z_rows_gmem, out_gmem):
        i0 = clamped_start("i", block_i, n)
        j0 = clamped_start("j", block_j, n)

        def write_row(k, carry):
            ii, s = k // steps, k % steps
            u, t = step_weights(s, steps)
            x = z_rows_gmem[i0 + ii].astype(jnp.float32)
            y = z_gmem[pl.ds(j0, block_j), :].astype(jnp.float32)
            out_gmem[i0 + ii, pl.ds(j0, block_j), s, :] = (u * x + t * y).astype(z.dtype)
            return carry

        jax.lax.fori_loop(0, block_i * steps, write_row, None)

    return kernel(z, jnp.broadcast_to(z[:, None, :], (n, block_j, d)))


@padded_kernel(MosaicGlobalLaunch, one_pairs_block)
def pairs(a: jax.Array, b: jax.Array, *, steps: int, launch: MosaicGlobalLaunch, interpret: bool) -> jax.Array:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): returns (P, steps, 64), a's dtype."""
    block = launch.pairs_block
    p, d = a.shape

    @functools.partial(
        plgpu.kernel,
        out_type=jax.ShapeDtypeStruct((p, steps, d), a.dtype),
        grid=(pl.cdiv(p, block),),
        grid_names=("p",),
        interpret=mosaic_interpret(interpret),
    )
    def kernel(a_gmem, b_gmem, out_gmem):
        p0 = clamped_start("p", block, p)

        def write_step(s, carry):
            u, t = step_weights(s, steps)
            x = a_gmem[pl.ds(p0, block), :].astype(jnp.float32)
            y = b_gmem[pl.ds(p0, block), :].astype(jnp.float32)
            out_gmem[pl.ds(p0, block), s, :] = (u * x + t * y).astype(a.dtype)
            return carry

        jax.lax.fori_loop(0, steps, write_step, None)

    return kernel(a, b)
