"""Jitted train steps of a config on 8 procedural chairs (a batch of the first 4): what the tests of the
step's options share."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def assert_weighted_term_trained(config, term: str, weight: float):
    """One step of `config`: its loss is the reconstruction plus `weight` times the positive `term`
    (an output of the step), and every parameter stays finite while some move."""
    start, state, out = run_steps(config)
    assert set(out) == {"loss", "grad_norm", "reconstruction_loss", term}
    assert float(out[term]) > 0 and float(out["reconstruction_loss"]) > 0
    assert float(out["loss"]) == pytest.approx(float(out["reconstruction_loss"]) + weight * float(out[term]))
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(start.params)))
