"""The pieces term: face-connected parts labelled as scipy labels them, the term zero for shapes in one
piece and pulling only the stray voxels toward empty, and train_step minimising reconstruction +
weight x the term."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from lerpnet import config_checks, pieces, train
from lerpnet.configs import default as default_config
from lerpnet.data import procedural_chairs
from tests.train_steps import assert_weighted_term_trained


def _grids():
    """Random grids of several densities (many parts, some winding), two procedural chairs, a grid in
    one piece and an empty one: (B, 12, 12, 12) bool."""
    rng = np.random.default_rng(0)
    noise = np.stack([rng.random((12, 12, 12)) < p for p in (0.2, 0.3, 0.35, 0.45, 0.6)])
    chairs = np.asarray(procedural_chairs(2, 1)).astype(bool)[:, ::2, ::2, ::2][:, 2:14, 2:14, 2:14]
    spiral = np.zeros((12, 12, 12), bool)  # one part that turns many times
    spiral[0, :, 0] = spiral[:, 11, 0] = spiral[11, :, 0] = spiral[:, 0, 0] = True
    spiral[2:, 0, 0] = False
    spiral[2, 0:10, 0] = spiral[2:10, 9, 0] = spiral[9, 2:10, 0] = True
    return np.concatenate([noise, chairs, spiral[None], np.zeros((1, 12, 12, 12), bool)])


def test_part_labels_find_the_face_connected_parts_scipy_finds():
    grids = _grids()
    labels = np.asarray(pieces.part_labels(jnp.asarray(grids)))
    for grid, got in zip(grids, labels):
        want, count = scipy.ndimage.label(grid)  # face connectivity: scipy's default in 3D
        assert np.array_equal(got > 0, grid)
        pairs = set(zip(want[grid].tolist(), got[grid].tolist()))
        assert len(pairs) == count == len({g for _, g in pairs})  # the same partition of the full voxels
        for part in range(1, count + 1):  # each part takes its largest voxel index (1-based)
            assert got[want == part][0] == np.flatnonzero((want == part).ravel()).max() + 1
    assert len(np.unique(labels[-2])) == 2  # the winding part is one, not cut where a sweep stopped


def test_outside_largest_part_is_everything_but_the_largest_part():
    grids = _grids()
    outside = np.asarray(pieces.outside_largest_part(jnp.asarray(grids)))
    for grid, got in zip(grids, outside):
        want, count = scipy.ndimage.label(grid)
        sizes = np.bincount(want.ravel())[1:]
        keep = want == 1 + int(np.argmax(sizes)) if count else np.zeros_like(grid)
        if count and np.sum(sizes == sizes.max()) == 1:
            np.testing.assert_array_equal(got, grid & ~keep)
        else:  # an empty grid, or two largest parts: one of them stays
            assert got.sum() == grid.sum() - (sizes.max() if count else 0)
    assert outside[:5].sum() > 0 and not outside[-2:].any()


def test_term_is_zero_in_one_piece_and_pulls_only_the_stray_voxels_toward_empty():
    grid = np.zeros((1, 8, 8, 8), bool)
    grid[0, 1:6, 1:6, 1:3] = True  # the main part: 50 voxels
    stray = np.zeros_like(grid)
    stray[0, 6:8, 6:8, 6:8] = True  # 8 voxels apart from it
    logits = np.where(grid | stray, 3.0, -3.0).astype(np.float32)
    mass = jnp.zeros(1)  # no mass to keep: the stray part alone
    value, grad = jax.value_and_grad(lambda x: pieces.pieces_term(x, 0.5, mass))(jnp.asarray(logits))
    assert float(value) == pytest.approx(8 * np.log1p(np.exp(3.0)) / (58 + 1), rel=1e-5)
    grad = np.asarray(grad)
    assert np.all(grad[stray] > 0) and np.all(grad[~stray] == 0)  # descent lowers the stray logits only
    one_piece = np.where(grid, 3.0, -3.0).astype(np.float32)
    assert float(pieces.pieces_term(jnp.asarray(one_piece), 0.5, mass)) == 0.0
    assert float(pieces.pieces_term(jnp.asarray(logits), 0.99, mass)) == 0.0  # nothing above the threshold


def test_lost_mass_is_paid_so_an_empty_mix_costs_what_a_full_one_keeps():
    """Emptying a mix would remove every stray part: the mass part makes that cost more than it saves."""
    grid = np.zeros((1, 8, 8, 8), bool)
    grid[0, 1:6, 1:6, 1:3] = True
    grid[0, 6:8, 6:8, 6:8] = True  # 58 full voxels in two parts
    logits = np.where(grid, 3.0, -3.0).astype(np.float32)
    soft = float(jnp.sum(jax.nn.sigmoid(jnp.asarray(logits))))
    mass = jnp.asarray([soft])
    kept = float(pieces.pieces_term(jnp.asarray(logits), 0.5, mass))  # the stray part alone: mass is kept
    assert kept == pytest.approx(8 * np.log1p(np.exp(3.0)) / 59, rel=1e-5)
    empty = float(pieces.pieces_term(jnp.full_like(jnp.asarray(logits), -9.0), 0.5, mass))
    assert empty == pytest.approx((soft - 512 * float(jax.nn.sigmoid(-9.0))) / (soft + 1), rel=1e-5) and empty > kept
    _, grad = jax.value_and_grad(lambda x: pieces.pieces_term(x, 0.5, mass + 10.0))(jnp.asarray(logits))
    main = np.asarray(grad)[grid & ~np.asarray(pieces.outside_largest_part(jnp.asarray(grid)))]
    assert np.all(main < 0)  # short of its mass, the mix's main part is pushed to grow


def test_train_step_minimises_reconstruction_plus_the_weighted_pieces_term():
    config = default_config.get_config("smoke")
    config.train.schedule = "constant"
    config.pieces.update(weight=0.5, threshold=0.5)  # an untrained decoder (all near 0.5) falls apart there
    assert_weighted_term_trained(config, "pieces_term", 0.5)


def test_a_threshold_outside_zero_to_one_is_refused_before_any_work(tmp_path):
    config = default_config.get_config("smoke")
    config.pieces.update(weight=1.0, threshold=1.0)
    with pytest.raises(config_checks.ConfigError, match=r"pieces.threshold"):
        train.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
