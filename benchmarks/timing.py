"""What the benchmarks add to lerpnet.timing: small problems timed inside one jitted loop, and the
hardware ceilings the figures are compared with.

Inside one jitted loop, launch and host overhead are not what gets measured. Ceilings (copy
bandwidth, the bf16 matmul rate) are measured in the same run as the figures they are compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from lerpnet.timing import Timing, time_calls


def time_in_jit_loop(
    fn: Callable[..., Any], *args: Any, inner: int = 100, warmup: int = 2, repeats: int = 10
) -> Timing:
    """Seconds per call of `fn(*args)` run `inner` times inside one jitted `fori_loop`.

    Each iteration's floating-point inputs are made to depend on the previous iteration's output
    (adding zero times one of its elements), so XLA cannot hoist the work out of the loop; the whole
    output is kept alive through an optimization barrier, so XLA cannot shrink the work to the part
    that is read.
    """

    def run(*operands):
        def body(_, carry):
            inputs, acc = carry
            out = jax.lax.optimization_barrier(fn(*inputs))
            first = jnp.ravel(jax.tree_util.tree_leaves(out)[0])[0].astype(jnp.float32)
            chained = jax.tree_util.tree_map(
                lambda a: a + (first * 0).astype(a.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                inputs,
            )
            return chained, acc + first

        return jax.lax.fori_loop(0, inner, body, (operands, jnp.float32(0)))[1]

    loop = jax.jit(run)
    timing = time_calls(loop, *args, warmup=warmup, repeats=repeats)
    return Timing(tuple(s / inner for s in timing.samples))


def copy_bandwidth(nbytes: int = 1 << 30, repeats: int = 20) -> float:
    """Measured device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    n = max(nbytes // 4, 1)
    x = jax.random.uniform(jax.random.key(0), (n,), jnp.float32)
    double = jax.jit(lambda a: a * 2.0)
    timing = time_calls(double, x, warmup=3, repeats=repeats)
    return 2 * 4 * n / timing.median


def bf16_matmul_rate(size: int = 8192, repeats: int = 5) -> float:
    """Measured bf16 matrix-multiply rate in FLOP/s on two `size` x `size` operands."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.bfloat16)
    timing = time_calls(jax.jit(lambda a, b: a @ b), a, b, warmup=1, repeats=repeats)
    return 2 * size**3 / timing.median
