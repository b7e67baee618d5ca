"""Jitted train steps of a config on 8 procedural chairs (a batch of the first 4): what the tests of the
step's options share."""

import jax
import numpy as np

from lerpnet import steps, train
from lerpnet.data import procedural_chairs


def run_steps(config, num_steps: int = 1):
    """(the initial state, the state after `num_steps` steps, the last step's outputs)."""
    packed = np.asarray(train._pack(procedural_chairs(8, 0)))
    idx = np.arange(4, dtype=np.int32)
    start = steps.create_state(config)
    step = jax.jit(lambda s: steps.train_step(s, packed, idx, config=config))
    state, out = step(start)
    for _ in range(num_steps - 1):
        state, out = step(state)
    return start, state, out
