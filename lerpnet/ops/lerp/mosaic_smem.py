"""All-pairs interpolation as a Mosaic GPU kernel that stages latent tiles in shared memory.

Each program owns a block of `block_i` rows i and `block_j` rows j (8x8 latent tiles, 64 numbers
each). It copies both blocks from global to shared memory once with the TMA, then for each row i
writes its `block_j x steps` outputs into a shared-memory staging tile and stores that tile to
global memory with one TMA copy, while the next tile is computed in the other buffer of a ring.
The study's "shared memory" version (Algorithm 1, Table 2).

Why the i block is held `block_j` times: Mosaic GPU's layout inference cannot broadcast one 64-wide
row across `block_j` rows in registers, so the i block is copied into `block_j` shared-memory
planes (one TMA copy each) and row i is read as a strided `(block_j, 64)` view.
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

# Staging tiles hold at most this many steps; longer paths are written in chunks of it.
MAX_STEP_CHUNK = 11


@dataclasses.dataclass(frozen=True)
class MosaicSmemLaunch(Launch):
    """Launch knobs: all-pairs blocks of `block_i` x `block_j` rows with `buffers` staging tiles in
    a ring; chosen pairs in blocks of `pairs_block` rows.

    Default blocks 4 x 32: the fastest measured on an H100 at N = 2048 in float32 and bfloat16
    (results/interpolation/kernels.md); they fill 220 KB of shared memory in float32 (lowering
    refuses a launch that needs more than the GPU has).
    """

    block_i: int = 4
    block_j: int = 32
    buffers: int = 2
    pairs_block: int = 16


@padded_kernel(MosaicSmemLaunch, one_block)
def all_pairs(z: jax.Array, *, steps: int, launch: MosaicSmemLaunch, interpret: bool) -> jax.Array:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): returns (N, N, steps, 64) in z's dtype."""
    block_i, block_j, buffers = launch.block_i, launch.block_j, launch.buffers
    n, d = z.shape
    chunk = min(steps, MAX_STEP_CHUNK)
    chunks = pl.cdiv(steps, chunk)

    @functools.partial(
        plgpu.kernel,
        out_type=jax.ShapeDtypeStruct((n, n, steps, d), z.dtype),
        grid=(pl.cdiv(n, block_i), pl.cdiv(n, block_j)),
        grid_names=("i", "j"),
        scratch_types=dict(
            zi=plgpu.SMEM((block_j, block_i, d), z.dtype),
            zj=plgpu.SMEM((block_j, d), z.dtype),
            staged=plgpu.SMEM((buffers, block_j, chunk, d), z.dtype),
            loaded=plgpu.Barrier(num_arrivals=block_j + 1),
        ),
        interpret=mosaic_interpret(interpret),
    )
    def kernel(z_gmem, out_gmem, zi, zj, staged, loaded):
        i0 = clamped_start("i", block_i, n)
        j0 = clamped_start("j", block_j, n)
        for plane in range(block_j):
            plgpu.copy_gmem_to_smem(z_gmem.at[pl.ds(i0, block_i)], zi.at[plane], loaded)
        plgpu.copy_gmem_to_smem(z_gmem.at[pl.ds(j0, block_j)], zj, loaded)
        plgpu.barrier_wait(loaded)

        def write_tile(k, carry):
            ii, s0 = k // chunks, jnp.minimum((k % chunks) * chunk, steps - chunk)
            buf = k % buffers
            plgpu.wait_smem_to_gmem(buffers - 1, wait_read_only=True)  # this buffer's last store has read it
            x = zi[:, ii, :].astype(jnp.float32)
            y = zj[...].astype(jnp.float32)
            for s in range(chunk):
                u, t = step_weights(s0 + s, steps)
                staged[buf, :, s, :] = (u * x + t * y).astype(z.dtype)
            plgpu.commit_smem()
            plgpu.copy_smem_to_gmem(staged.at[buf], out_gmem.at[i0 + ii, pl.ds(j0, block_j), pl.ds(s0, chunk)])
            return carry

        jax.lax.fori_loop(0, block_i * chunks, write_tile, None)
        plgpu.wait_smem_to_gmem(0)

    return kernel(z)


@padded_kernel(MosaicSmemLaunch, one_pairs_block)
def pairs(a: jax.Array, b: jax.Array, *, steps: int, launch: MosaicSmemLaunch, interpret: bool) -> jax.Array:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): returns (P, steps, 64), a's dtype."""
    block = launch.pairs_block
    p, d = a.shape
    chunk = min(steps, MAX_STEP_CHUNK)
    chunks = pl.cdiv(steps, chunk)

    @functools.partial(
        plgpu.kernel,
        out_type=jax.ShapeDtypeStruct((p, steps, d), a.dtype),
        grid=(pl.cdiv(p, block),),
        grid_names=("p",),
        scratch_types=dict(
            sa=plgpu.SMEM((block, d), a.dtype),
            sb=plgpu.SMEM((block, d), a.dtype),
            staged=plgpu.SMEM((2, block, chunk, d), a.dtype),
            loaded=plgpu.Barrier(num_arrivals=2),
        ),
        interpret=mosaic_interpret(interpret),
    )
    def kernel(a_gmem, b_gmem, out_gmem, sa, sb, staged, loaded):
        p0 = clamped_start("p", block, p)
        plgpu.copy_gmem_to_smem(a_gmem.at[pl.ds(p0, block)], sa, loaded)
        plgpu.copy_gmem_to_smem(b_gmem.at[pl.ds(p0, block)], sb, loaded)
        plgpu.barrier_wait(loaded)

        def write_tile(c, carry):
            s0, buf = jnp.minimum(c * chunk, steps - chunk), c % 2
            plgpu.wait_smem_to_gmem(1, wait_read_only=True)
            x, y = sa[...].astype(jnp.float32), sb[...].astype(jnp.float32)
            for s in range(chunk):
                u, t = step_weights(s0 + s, steps)
                staged[buf, :, s, :] = (u * x + t * y).astype(a.dtype)
            plgpu.commit_smem()
            plgpu.copy_smem_to_gmem(staged.at[buf], out_gmem.at[pl.ds(p0, block), pl.ds(s0, chunk)])
            return carry

        jax.lax.fori_loop(0, chunks, write_tile, None)
        plgpu.wait_smem_to_gmem(0)

    return kernel(a, b)
