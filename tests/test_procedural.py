"""Procedural chairs: deterministic, varied, connected, inside the grid, in the canonical pose."""

import numpy as np
import pytest
import scipy.ndimage

from lerpnet.data import procedural_chairs, sample_params
from lerpnet.data.procedural import ARMS, BACKS, BASES, FLOOR

N = 120


@pytest.fixture(scope="module")
def chairs():
    return procedural_chairs(N, seed=3)


def test_shape_dtype_and_determinism(chairs):
    assert chairs.shape == (N, 32, 32, 32) and chairs.dtype == bool
    np.testing.assert_array_equal(procedural_chairs(N, seed=3), chairs)
    np.testing.assert_array_equal(procedural_chairs(5, seed=3), chairs[:5])  # prefix-stable
    assert not np.array_equal(procedural_chairs(5, seed=4), chairs[:5])


def test_chairs_are_varied(chairs):
    distinct = {np.packbits(c).tobytes() for c in chairs}
    assert len(distinct) == N
    params = [sample_params(np.random.default_rng([3, i])) for i in range(N)]
    assert {p.base for p in params} == set(BASES)
    assert {p.back for p in params} == set(BACKS)
    assert {p.arms for p in params} == set(ARMS)
    occupancy = chairs.mean(axis=(1, 2, 3))
    assert occupancy.min() > 0.005 and occupancy.max() < 0.2 and occupancy.std() > 0.005


def test_every_chair_is_one_piece_standing_on_the_floor(chairs):
    for k, chair in enumerate(chairs):
        _, pieces = scipy.ndimage.label(chair)  # face-connected
        assert pieces == 1, f"chair {k} falls apart into {pieces} pieces"
        assert chair[:, :, FLOOR].any() and not chair[:, :, :FLOOR].any()
        assert not chair[:, :, -1].any()  # nothing clipped at the top


def test_canonical_pose_back_up_at_plus_x(chairs):
    """z-up with the back at high x, like the ModelNet chairs (see lerpnet.data.datasets)."""
    for chair in chairs[:30]:
        idx = np.argwhere(chair)
        z_top = idx[:, 2].max()
        assert idx[idx[:, 2] == z_top, 0].mean() > idx[:, 0].mean()  # highest voxels are the back
        heights = np.ptp(idx, axis=0)
        assert heights[2] >= max(heights[0], heights[1]) - 2  # chairs are about as tall as wide or taller


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="n must be >= 0"):
        procedural_chairs(-1)
