"""The reconstruction loss: the overlap (Tversky / Dice) term and distance-softened targets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import distance, losses


def _target():
    return jnp.zeros((1, 32, 32, 32), bool).at[0, 8:16, 8:16, 8:16].set(True)  # 512 full voxels


def test_tversky_at_one_half_is_dice():
    t = _target()
    pred = jnp.zeros(t.shape).at[0, 8:16, 8:16, 8:12].set(1.0).at[0, 20:22, 20:22, 20:22].set(1.0)
    tp, fp, fn = 256.0, 8.0, 256.0
    dice = 2 * tp / (2 * tp + fp + fn)
    got = float(losses.tversky_loss(pred, t, 0.5, 0.5)[0])
    assert got == pytest.approx(1.0 - dice, abs=2e-3)  # the +1 smoothing moves it slightly
    assert float(losses.tversky_loss(t.astype(jnp.float32), t, 0.5, 0.5)[0]) == pytest.approx(0.0, abs=1e-6)
    empty = jnp.zeros(t.shape)
    assert float(losses.tversky_loss(empty, jnp.zeros(t.shape, bool), 0.3, 0.7)[0]) == 0.0  # both empty: agree


def test_beta_above_alpha_costs_missed_voxels_more_than_added_ones():
    t = _target()
    missing = t.astype(jnp.float32).at[0, 8:10].set(0.0)  # 128 full voxels missed
    extra = t.astype(jnp.float32).at[0, 16:18, 8:16, 8:16].set(1.0)  # 128 empty voxels filled
    fn_cost = float(losses.tversky_loss(missing, t, 0.3, 0.7)[0])
    fp_cost = float(losses.tversky_loss(extra, t, 0.3, 0.7)[0])
    assert fn_cost > fp_cost > 0


def test_overlap_weight_adds_the_term_to_the_per_voxel_loss():
    t = _target()
    logits = jnp.where(t, 1.0, -1.0).at[0, 8:10].set(-1.0)
    plain = losses.loss_config()
    mixed = losses.loss_config(overlap_weight=0.5, tversky_alpha=0.3, tversky_beta=0.7)
    extra = 0.5 * losses.tversky_loss(1 / (1 + jnp.exp(-logits)), t, 0.3, 0.7)
    np.testing.assert_allclose(losses.voxel_loss(logits, t, mixed), losses.voxel_loss(logits, t, plain) + extra,
                               rtol=1e-6)
    assert np.all(np.isfinite(losses.voxel_loss(jnp.full(t.shape, -50.0), jnp.zeros(t.shape, bool), mixed)))


def test_distance_softened_targets_make_the_best_logit_scale_times_the_distance_inside():
    t = _target()
    scale = 2.0
    depth = -distance.signed_distance(t, 8)  # > 0 inside
    best = scale * depth
    cfg = losses.loss_config(distance_scale=scale)
    grad = jax.grad(lambda x: jnp.sum(losses.voxel_loss(x, t, cfg)))(best)
    assert float(jnp.max(jnp.abs(grad))) < 1e-7  # the minimum of the per-voxel term
    hard = jax.grad(lambda x: jnp.sum(losses.voxel_loss(x, t, losses.loss_config())))(best)
    assert float(jnp.max(jnp.abs(hard))) > 1e-6  # 0/1 targets keep pushing the logits out
    soft = np.asarray(losses.soft_targets(t, scale))
    exact = -np.asarray(distance.signed_distance(t))
    near = np.abs(exact) < 4 / scale
    np.testing.assert_allclose(soft[near], 1 / (1 + np.exp(-scale * exact[near])), rtol=1e-6)
    assert soft[np.asarray(t) & (exact == 0.5)].min() == pytest.approx(1 / (1 + np.exp(-1.0)))  # inside the surface
    assert soft[0, 0, 0, 0] < 4e-4  # about 0 far outside


def test_distance_softened_targets_keep_the_overlap_term_on_the_hard_targets():
    t = _target()
    logits = jnp.where(t, 3.0, -3.0)
    soft = losses.loss_config(distance_scale=1.0, overlap_weight=1.0)
    per_voxel_only = losses.loss_config(distance_scale=1.0)
    term = losses.voxel_loss(logits, t, soft) - losses.voxel_loss(logits, t, per_voxel_only)
    np.testing.assert_allclose(term, losses.tversky_loss(jax.nn.sigmoid(logits), t, 0.5, 0.5), rtol=1e-6)
