"""The morph term: morph targets that move monotonically from one shape to
its partner, and train_step minimising reconstruction + weight x the morph term."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import acai, metrics, morph
from lerpnet.configs import default as default_config
from lerpnet.data import procedural_chairs
from tests.train_steps import assert_weighted_term_trained


@pytest.fixture(scope="module")
def chairs():
    return np.asarray(procedural_chairs(4, 0)).astype(bool)  # (4, 32, 32, 32)


def test_morph_runs_from_the_partner_to_the_shape_and_each_voxel_flips_once(chairs):
    a, b = chairs[0], chairs[-1]  # partners: the batch reversed
    alphas = np.linspace(0.0, 1.0, 11)
    path = np.stack([np.asarray(morph.morph_targets(jnp.asarray(chairs), jnp.full(4, t)))[0] for t in alphas])
    np.testing.assert_array_equal(path[0], b)
    np.testing.assert_array_equal(path[-1], a)
    assert np.all((path & a & b) == (a & b)) and not np.any(path & ~a & ~b)  # both: kept; neither: never
    assert np.sum(a != b) > 100
    flips = np.sum(path[1:] != path[:-1], axis=0)
    assert flips.max() == 1 and flips.sum() == np.sum(a != b)  # each disagreeing voxel flips exactly once
    iou_a = np.asarray(metrics.iou(jnp.asarray(path), jnp.asarray(np.broadcast_to(a, path.shape))))
    assert np.all(np.diff(iou_a) >= 0)  # monotone toward the shape
    per_step = np.sum(path[1:] != path[:-1], axis=(1, 2, 3))
    assert per_step.max() < 4 * per_step.mean()  # spread over the path, not all at one step


def test_morph_targets_pair_with_acai_interpolants(chairs):
    """Shape i's morph uses alpha_i toward its partner, as acai.interpolants mixes the latents."""
    _, alpha = acai.interpolants(jnp.zeros((4, 2, 2, 2, 8)), jax.random.key(3))
    targets = np.asarray(morph.morph_targets(jnp.asarray(chairs), alpha))
    for i in range(4):
        one = np.asarray(morph.morph_targets(jnp.asarray(chairs[[i, 3 - i]]), jnp.stack([alpha[i], alpha[3 - i]])))
        np.testing.assert_array_equal(targets[i], one[0])


def test_train_step_minimises_reconstruction_plus_the_weighted_morph_term():
    config = default_config.get_config("smoke")
    config.train.schedule = "constant"
    config.morph.weight = 0.5
    assert_weighted_term_trained(config, "morph_term", 0.5)
