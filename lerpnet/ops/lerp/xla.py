"""All-pairs interpolation as jitted jnp broadcasting: the XLA implementation, and the reference the
Pallas kernels are checked against (the same float32 weights, one expression)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lerpnet.ops.common import step_weights


def _weights(steps: int) -> tuple[jax.Array, jax.Array]:
    """(1 - t_s, t_s) in float32 as the kernels compute them, shaped to broadcast over (..., steps, 64)."""
    u, t = step_weights(jnp.arange(steps), steps)
    return u[:, None], t[:, None]


@functools.partial(jax.jit, static_argnames="steps")
def all_pairs(z: jax.Array, *, steps: int) -> jax.Array:
    """out[i, j, s] = (1 - t_s) z[i] + t_s z[j] for z (N, 64): (N, N, steps, 64) in z's dtype."""
    u, t = _weights(steps)
    x = z.astype(jnp.float32)[:, None, None, :]
    y = z.astype(jnp.float32)[None, :, None, :]
    return (u * x + t * y).astype(z.dtype)


@functools.partial(jax.jit, static_argnames="steps")
def pairs(a: jax.Array, b: jax.Array, *, steps: int) -> jax.Array:
    """out[p, s] = (1 - t_s) a[p] + t_s b[p] for a, b (P, 64): (P, steps, 64) in a's dtype."""
    u, t = _weights(steps)
    return (u * a.astype(jnp.float32)[:, None, :] + t * b.astype(jnp.float32)[:, None, :]).astype(a.dtype)
