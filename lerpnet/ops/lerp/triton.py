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

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from lerpnet.ops.common import pad_rows, step_weights


def _params(interpret: bool, num_warps: int) -> pltriton.CompilerParams | None:
    return None if interpret else pltriton.CompilerParams(num_warps=num_warps, num_stages=1)


@functools.partial(jax.jit, static_argnames=("steps", "block_i", "block_j", "num_warps", "interpret"))
def all_pairs(z: jax.Array, *, steps: int, block_i: int = 8, block_j: int = 8, num_warps: int = 4,
              interpret: bool = False) -> jax.Array:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): returns (N, N, steps, 64) in z's dtype."""
    n, d = z.shape
    rows = pl.cdiv(n, math.lcm(block_i, block_j)) * math.lcm(block_i, block_j)
    if n < rows:
        return all_pairs(pad_rows(z, rows), steps=steps, block_i=block_i, block_j=block_j,
                         num_warps=num_warps, interpret=interpret)[:n, :n]

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
        compiler_params=_params(interpret, num_warps),
        interpret=interpret,
        name="lerp_all_pairs_triton",
    )(z, z)


@functools.partial(jax.jit, static_argnames=("steps", "block", "num_warps", "interpret"))
def pairs(a: jax.Array, b: jax.Array, *, steps: int, block: int = 16, num_warps: int = 4,
          interpret: bool = False) -> jax.Array:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): returns (P, steps, 64), a's dtype."""
    p, d = a.shape
    if p < block:
        return pairs(pad_rows(a, block), pad_rows(b, block), steps=steps, block=block, num_warps=num_warps,
                     interpret=interpret)[:p]

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
        compiler_params=_params(interpret, num_warps),
        interpret=interpret,
        name="lerp_pairs_triton",
    )(a, b)
