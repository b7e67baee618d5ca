"""All-pairs interpolation as a Triton-lowered `pl.pallas_call` (the portable Pallas GPU path).

Each program loads a block of i rows and a block of j rows once and writes their
`block_i x block_j x steps` outputs, one step at a time (Triton needs power-of-two arrays, so no
`steps`-long array is ever formed). Triton places the blocks itself (registers or shared memory);
there is no explicit staging. A ragged N is padded to whole blocks and the output sliced back (one
extra copy of the output): Pallas's masking of partial 4-D output blocks wrote wrong values on an
H100 (jax 0.11.2, results/interpolation/gpu_tests_first_run.log). On jax 0.11 the Triton backend is
deprecated, but it is the only other way to write this kernel; compiler params are always passed
explicitly because the default backend of `pallas_call` changed between jax releases.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from lerpnet.ops.common import Launch, one_pairs_block, padded_kernel, step_weights


@dataclasses.dataclass(frozen=True)
class TritonLaunch(Launch):
    """Launch knobs: all-pairs blocks of `block_i` x `block_j` rows, chosen pairs in blocks of
    `pairs_block` rows, `num_warps` warps a program. All powers of two (Triton's arrays must be)."""

    powers_of_two: ClassVar[tuple[str, ...]] = ("block_i", "block_j", "pairs_block", "num_warps")
    block_i: int = 8
    block_j: int = 8
    pairs_block: int = 16
    num_warps: int = 4


def _params(interpret: bool, launch: TritonLaunch) -> pltriton.CompilerParams | None:
    return None if interpret else pltriton.CompilerParams(num_warps=launch.num_warps, num_stages=1)


def _whole_blocks(launch: TritonLaunch, n: int) -> int:
    """Rows an all-pairs input is padded to: whole i blocks and whole j blocks (no masked blocks)."""
    whole = math.lcm(launch.block_i, launch.block_j)
    return pl.cdiv(n, whole) * whole


@padded_kernel(TritonLaunch, _whole_blocks)
def all_pairs(z: jax.Array, *, steps: int, launch: TritonLaunch, interpret: bool) -> jax.Array:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): returns (N, N, steps, 64) in z's dtype."""
    block_i, block_j = launch.block_i, launch.block_j
    n, d = z.shape

    def kernel(zi_ref, zj_ref, out_ref):
        x = zi_ref[...].astype(jnp.float32)[:, None, :]
        y = zj_ref[...].astype(jnp.float32)[None, :, :]
        for s in range(steps):
            u, t = step_weights(s, steps)
            out_ref[:, :, s, :] = (u * x + t * y).astype(out_ref.dtype)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((n, n, steps, d), z.dtype),
        grid=(pl.cdiv(n, block_i), pl.cdiv(n, block_j)),
        in_specs=[pl.BlockSpec((block_i, d), lambda i, j: (i, 0)), pl.BlockSpec((block_j, d), lambda i, j: (j, 0))],
        out_specs=pl.BlockSpec((block_i, block_j, steps, d), lambda i, j: (i, j, 0, 0)),
        compiler_params=_params(interpret, launch),
        interpret=interpret,
        name="lerp_all_pairs_triton",
    )(z, z)


@padded_kernel(TritonLaunch, one_pairs_block)
def pairs(a: jax.Array, b: jax.Array, *, steps: int, launch: TritonLaunch, interpret: bool) -> jax.Array:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): returns (P, steps, 64), a's dtype."""
    block = launch.pairs_block
    p, d = a.shape

    def kernel(a_ref, b_ref, out_ref):
        x, y = a_ref[...].astype(jnp.float32), b_ref[...].astype(jnp.float32)
        for s in range(steps):
            u, t = step_weights(s, steps)
            out_ref[:, s, :] = (u * x + t * y).astype(out_ref.dtype)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((p, steps, d), a.dtype),
        grid=(pl.cdiv(p, block),),
        in_specs=[pl.BlockSpec((block, d), lambda i: (i, 0))] * 2,
        out_specs=pl.BlockSpec((block, steps, d), lambda i: (i, 0, 0)),
        compiler_params=_params(interpret, launch),
        interpret=interpret,
        name="lerp_pairs_triton",
    )(a, b)
