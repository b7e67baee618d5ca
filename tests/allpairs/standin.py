"""A stand-in decoder whose decoded shapes are known exactly, for driving the block engine.

The stand-in decodes a latent filled with the number c to an 8^3 box whose low x corner is at c,
so interpolating between boxes at x = 0 and x = 10 in 11 steps slides the box one voxel a step.
Corners are multiples of 10, so every interpolated corner is a whole number (give or take
rounding, which the half-voxel margin of the box absorbs).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet.allpairs.plan import block_step
from lerpnet.allpairs.scores import reference_matrix
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.common import step_weights

STEPS = 11
POSITIONS = np.array([0.0, 20.0, 10.0, 0.0, 10.0])  # box corners; 10 is the midpoint of the first two


def box_logits(params, z):
    """(B, 2,2,2,8) latents filled with c -> logits > 0 exactly on the box x in [c, c+8), y, z in [4, 12)."""
    c = jnp.mean(z.reshape(z.shape[0], -1), axis=1) * params["scale"]
    x = jnp.arange(32, dtype=jnp.float32)
    along_x = 4 - jnp.abs(x[None, :] - c[:, None] - 3.5)
    across = 4 - jnp.abs(x - 7.5)
    return jnp.minimum(along_x[:, :, None, None], jnp.minimum(across[:, None], across[None, :])[None])


def box_grid(c: float) -> np.ndarray:
    grid = np.zeros((32, 32, 32), bool)
    grid[int(c) : int(c) + 8, 4:12, 4:12] = True
    return grid


def box_interior(params, z, i, j, steps: int = STEPS):
    """The packed interior steps 1..steps-2 of the stand-in's paths, like lerp_decode(step_range=(1, steps-1))."""
    u, t = step_weights(jnp.arange(1, steps - 1), steps)
    latents = u[None, :, None] * z[i].reshape(len(i), 1, -1) + t[None, :, None] * z[j].reshape(len(j), 1, -1)
    logits = box_logits(params, latents.reshape(-1, *z.shape[1:]))
    return pack_voxels(logits > 0).reshape(len(i), steps - 2, 32, 32)


PARAMS = {"scale": jnp.float32(1.0)}
LATENTS = jnp.asarray(np.broadcast_to(POSITIONS[:, None, None, None, None], (len(POSITIONS), 2, 2, 2, 8)), jnp.float32)
INPUTS = pack_voxels(np.stack([box_grid(c) for c in POSITIONS]))
ENDPOINTS = pack_voxels(box_logits(PARAMS, LATENTS) > 0)  # the shapes' own decoded grids (the boxes)
REFERENCE = reference_matrix(INPUTS)
STEP = functools.partial(block_step, interior=box_interior, steps=STEPS, tolerance=0.0)
OPERANDS = (PARAMS, LATENTS, ENDPOINTS, INPUTS, *REFERENCE)


def operand_specs():
    return jax.eval_shape(lambda: OPERANDS)
