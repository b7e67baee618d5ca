"""Bit-packed 32^3 voxel grids: 4 KiB a shape instead of 32 KiB of bools.

Decoding millions of interpolants only pays if their results stay small: bit k of word [..., x, y]
holds voxel [..., x, y, k], so one uint32 is one column along z.
"""

import jax.numpy as jnp

_BITS = 32


def _check_resolution(shape: tuple[int, ...], what: str) -> None:
    if len(shape) < 2 or shape[-1] != _BITS:
        raise ValueError(f"{what} must end in a z axis of {_BITS} voxels, got shape {shape}")


def pack_voxels(voxels) -> jnp.ndarray:
    """bool (..., X, Y, 32) -> uint32 (..., X, Y)."""
    voxels = jnp.asarray(voxels)
    _check_resolution(voxels.shape, "voxels to pack")
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(_BITS, dtype=jnp.uint32))
    # Distinct powers of two never carry, so the sum is the bitwise OR.
    return jnp.sum(voxels.astype(jnp.uint32) * weights, axis=-1, dtype=jnp.uint32)


def unpack_voxels(packed) -> jnp.ndarray:
    """uint32 (..., X, Y) -> bool (..., X, Y, 32); the inverse of `pack_voxels`."""
    packed = jnp.asarray(packed, dtype=jnp.uint32)
    shifts = jnp.arange(_BITS, dtype=jnp.uint32)
    return (jnp.right_shift(packed[..., None], shifts) & jnp.uint32(1)).astype(bool)
