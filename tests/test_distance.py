"""Signed distance fields on the device: exact Euclidean distances, exact up to a reach when clipped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from lerpnet import distance
from lerpnet.data import procedural_chairs


@pytest.fixture(scope="module")
def chairs():
    return np.asarray(procedural_chairs(4, 0)).astype(bool)  # (4, 32, 32, 32)


def test_distances_are_exact_euclidean(chairs):
    got = np.asarray(jax.jit(distance.distance_to)(jnp.asarray(chairs)))
    want = np.stack([ndimage.distance_transform_edt(~c) for c in chairs])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    empty = np.asarray(distance.distance_to(jnp.zeros((1, 4, 4, 4), bool)))
    np.testing.assert_allclose(empty, np.sqrt(3 * 16))  # no set voxel: the grid's diagonal


@pytest.mark.parametrize("reach", [2, 5])
def test_clipped_distances_are_exact_up_to_the_reach(chairs, reach):
    got = np.asarray(jax.jit(lambda m: distance.distance_to(m, reach))(jnp.asarray(chairs)))
    want = np.stack([ndimage.distance_transform_edt(~c) for c in chairs])
    assert want.max() > 2 * reach  # the clip matters
    np.testing.assert_allclose(got, np.minimum(want, reach), rtol=1e-5, atol=1e-5)


def test_signed_distance_is_negative_exactly_inside_and_half_a_voxel_at_the_surface(chairs):
    d = np.asarray(distance.signed_distance(jnp.asarray(chairs)))
    np.testing.assert_array_equal(d < 0, chairs)
    faces = ndimage.generate_binary_structure(3, 1)[None]  # the 6 face neighbours, per shape
    surface_inside = chairs & ~ndimage.binary_erosion(chairs, structure=faces)
    assert surface_inside.any()
    np.testing.assert_allclose(d[surface_inside], -0.5)
    touching = ~chairs & ndimage.binary_dilation(chairs, structure=faces)
    np.testing.assert_allclose(d[touching], 0.5)
