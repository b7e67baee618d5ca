"""What the interpolation benchmarks feed the kernels and count: random latents, output bytes."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_latents(n: int, dtype, seed: int = 0) -> jax.Array:
    """(n, 64) latents drawn around 0.5, never all zeros (timing on zeros can flatter a kernel)."""
    return (jax.random.normal(jax.random.key(seed), (n, 64), jnp.float32) + 0.5).astype(dtype)


def output_bytes(n: int, steps: int, dtype) -> int:
    """Bytes an all-pairs call writes: N * N * steps latents of 64 numbers (reading N is negligible)."""
    return n * n * steps * 64 * jnp.dtype(dtype).itemsize
