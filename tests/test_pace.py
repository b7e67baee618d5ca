"""The pace term: stratified path times, path latents toward the batch partner, a term that is zero
for even monotone paths and large for jumps and detours, and train_step adding it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import config_checks, pace, train
from lerpnet.configs import default as default_config
from tests.train_steps import assert_weighted_term_trained


def test_path_times_are_stratified_from_0_to_1():
    times = np.asarray(pace.path_times(jax.random.key(0), 64, 3))
    assert times.shape == (64, 5)
    np.testing.assert_array_equal(times[:, 0], 0.0)
    np.testing.assert_array_equal(times[:, -1], 1.0)
    assert np.all(np.diff(times, axis=1) >= 0.1 / 3 - 1e-6)
    for k in range(3):  # point k lies in the middle 80% of its third
        assert np.all((times[:, k + 1] >= (k + 0.1) / 3 - 1e-6) & (times[:, k + 1] <= (k + 0.9) / 3 + 1e-6))


def test_path_latents_run_from_each_shape_to_its_partner():
    z = jax.random.normal(jax.random.key(1), (6, 2, 2, 2, 8))
    times = pace.path_times(jax.random.key(2), 2, 4)
    inner = np.asarray(pace.path_latents(z, times))
    assert inner.shape == (2, 4, 2, 2, 2, 8)
    for i in range(2):
        for k in range(4):
            t = float(times[i, k + 1])
            np.testing.assert_allclose(inner[i, k], (1 - t) * z[i] + t * z[5 - i], rtol=1e-6, atol=1e-6)


def _path(flip_times, times):
    """Occupancy along a path where voxel v (full at the start) empties at flip_times[v]."""
    return (np.asarray(times)[:, None] < np.asarray(flip_times)[None, :]).astype(np.float32)[None]


def test_even_monotone_paths_cost_nothing_and_jumps_and_detours_do():
    times = np.linspace(0.0, 1.0, 5)[None]  # 4 stretches of 0.25
    even = _path(np.repeat([0.1, 0.3, 0.6, 0.9], 500), times[0])  # 500 voxels leave in each stretch
    jump = _path(np.full(2000, 0.6), times[0])  # all in one stretch
    assert float(pace.pace_term(jnp.asarray(even), jnp.asarray(times))) == pytest.approx(0.0, abs=2e-3)
    # the speed is 4x the mean on one quarter and 0 on the rest: 0.25 * 3^2 + 0.75 * 1^2
    assert float(pace.pace_term(jnp.asarray(jump), jnp.asarray(times))) == pytest.approx(3.0, rel=2e-3)
    detour = even.copy()
    detour[0, 2, :1000] = 1.0 - detour[0, 2, :1000]  # half the voxels blink at the midpoint
    assert float(pace.pace_term(jnp.asarray(detour), jnp.asarray(times))) > 0.5
    still = np.ones((1, 5, 100), np.float32)  # nothing to change: nothing to pay
    assert float(pace.pace_term(jnp.asarray(still), jnp.asarray(times))) == 0.0


def test_train_step_minimises_reconstruction_plus_the_weighted_pace_term():
    config = default_config.get_config("smoke")
    config.train.schedule = "constant"
    config.pace.update(weight=0.5, pairs=2, points=2)
    assert_weighted_term_trained(config, "pace_term", 0.5)


def test_more_pairs_than_half_the_batch_is_refused_before_any_work(tmp_path):
    config = default_config.get_config("smoke")
    config.pace.update(weight=1.0, pairs=3)  # smoke batch: 4 shapes
    with pytest.raises(config_checks.ConfigError, match=r"pace.pairs=3 must be at most half of train.batch_size=4"):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_sharpness_exposes_a_blend_of_the_ends_that_jumps_when_thresholded():
    """Blending the ends' probabilities changes them evenly (no cost at sharpness 1), but every voxel
    crosses 0.5 at t = 0.5: scored on sigmoid(8 x logit) the same path is a jump."""
    times = np.linspace(0.0, 1.0, 6)[None]
    start = np.where(np.arange(2000) < 1000, 0.98, 0.02)  # half the voxels full at the start, half at the end
    probs = (1 - times[0])[:, None] * start[None] + times[0][:, None] * (1 - start)[None]
    logits = np.log(probs / (1 - probs))[None]
    soft = float(pace.pace_term(jax.nn.sigmoid(jnp.asarray(logits)), jnp.asarray(times)))
    sharp = float(pace.pace_term(jax.nn.sigmoid(8.0 * jnp.asarray(logits)), jnp.asarray(times)))
    assert soft == pytest.approx(0.0, abs=1e-3)
    assert sharp > 1.0
