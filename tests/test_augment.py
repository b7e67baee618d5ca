"""Training augmentation: mirrors, translations, random erasing, and which of them touch the target."""

import jax
import jax.numpy as jnp
import numpy as np

from lerpnet import augment


def _cube(lo=12, hi=20):
    return jnp.zeros((16, 32, 32, 32), bool).at[:, lo:hi, lo:hi, lo:hi].set(True)


def test_mirror_flips_some_shapes_along_the_axis():
    x = jnp.zeros((16, 32, 32, 32), bool).at[:, :, 0, :].set(True)
    out = augment.mirror(x, jax.random.key(0), axis=1)
    flipped = out[:, :, 31, :].all(axis=(1, 2))
    assert 0 < int(flipped.sum()) < 16
    np.testing.assert_array_equal(out[~flipped], x[~flipped])
    np.testing.assert_array_equal(augment.mirror(x, jax.random.key(0), axis=-1), x)


def test_translate_moves_whole_shapes_within_the_bound():
    x = _cube()
    out = np.asarray(augment.translate(x, jax.random.key(1), max_shift=3))
    assert out.shape == x.shape and out.dtype == np.bool_
    moved = 0
    for grid in out:
        full = np.argwhere(grid)
        assert len(full) == 8**3  # nothing cut off: the cube stays inside the grid
        shift = full.min(axis=0) - 12
        assert np.all(np.abs(shift) <= 3)
        moved += bool(np.any(shift))
    assert moved >= 8  # most of 16 shapes get a nonzero shift
    np.testing.assert_array_equal(augment.translate(x, jax.random.key(1), max_shift=0), x)


def test_translate_drops_what_leaves_the_grid():
    x = jnp.zeros((32, 32, 32, 32), bool).at[:, 0, 8:24, 8:24].set(True)  # a plate on the first x layer
    out = np.asarray(augment.translate(x, jax.random.key(2), max_shift=2))
    counts = out.sum(axis=(1, 2, 3))
    assert set(counts.tolist()) <= {0, 16 * 16}  # pushed out (empty) or kept whole, never wrapped around
    assert 0 in counts.tolist() and 16 * 16 in counts.tolist()
    assert not out[:, 3:].any()  # never further than max_shift


def test_erase_blanks_one_box_of_the_chosen_size():
    x = jnp.ones((16, 32, 32, 32), bool)
    out = np.asarray(augment.erase(x, jax.random.key(3), prob=0.5, size=6))
    blanked = (~out).sum(axis=(1, 2, 3))
    assert set(blanked.tolist()) <= {0, 6**3}
    assert 0 < int((blanked > 0).sum()) < 16
    for grid in out[blanked > 0]:
        hole = np.argwhere(~grid)
        assert np.all(hole.max(axis=0) - hole.min(axis=0) == 5)
    np.testing.assert_array_equal(augment.erase(x, jax.random.key(3), prob=0.0, size=6), x)


def test_augment_shifts_input_and_target_together_and_erases_the_input_only():
    x = _cube(4, 28)  # large enough that every 8^3 box cuts into it
    cfg = augment.augment_config(mirror_axis=1, max_shift=2, erase_prob=1.0, erase_size=8)
    inputs, targets = augment.augment(x, jax.random.key(4), cfg)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    assert np.all(targets.sum(axis=(1, 2, 3)) == 24**3)  # targets: moved, not damaged
    assert not np.any(inputs & ~targets)  # the input is the target with voxels removed
    assert np.all(inputs.sum(axis=(1, 2, 3)) < targets.sum(axis=(1, 2, 3)))
    off = augment.augment_config(mirror_axis=-1)
    same_in, same_target = augment.augment(x, jax.random.key(4), off)
    np.testing.assert_array_equal(same_in, x)
    np.testing.assert_array_equal(same_target, x)
