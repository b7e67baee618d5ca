"""The reference morphs (no model) that the decoder's path scores are set beside."""

import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import distance, metrics
from lerpnet.data import procedural_chairs

from benchmarks import reference_paths


@pytest.fixture(scope="module")
def chairs():
    return np.asarray(procedural_chairs(5, 3)).astype(bool)


def test_morphs_run_from_the_first_chair_to_the_second(chairs):
    a, b = chairs[:2], chairs[2:4]
    da, db = (np.asarray(distance.signed_distance(jnp.asarray(x))) for x in (a, b))
    for kind in reference_paths.MORPHS:
        path = reference_paths.morph_paths(kind, a, b, da, db, 11)
        assert path.shape == (2, 11, 32, 32, 32)
        np.testing.assert_array_equal(path[:, 0], a)
        np.testing.assert_array_equal(path[:, -1], b)
    jump = reference_paths.morph_paths("one_jump", a, b, da, db, 11)
    assert np.all(jump[:, :5] == a[:, None]) and np.all(jump[:, 5:] == b[:, None])
    with pytest.raises(ValueError, match="unknown morph 'blend'"):
        reference_paths.morph_paths("blend", a, b, da, db, 11)


def test_scores_of_the_references_follow_from_their_construction(chairs):
    rows, meta = reference_paths.reference_scores(chairs, chairs, steps=5)
    by = {r["morph"]: r for r in rows}
    assert meta["pairs"] == 10 and by["distance_morph"]["paths"] == 10
    assert by["distance_morph"]["fraction_monotone"] == 1.0 and by["one_jump"]["fraction_monotone"] == 1.0
    assert by["one_jump"]["fraction_one_piece"] == 1.0  # its midpoint is a chair
    i, j = np.triu_indices(5, 1)
    inputs_iou = np.asarray(metrics.iou(jnp.asarray(chairs[i]), jnp.asarray(chairs[j])))
    assert by["one_jump"]["median_smoothness"] == pytest.approx(float(np.median(inputs_iou)), abs=1e-6)
    assert meta["median_input_iou"] == pytest.approx(float(np.median(inputs_iou)), abs=1e-6)
    assert by["distance_morph"]["median_smoothness"] > by["one_jump"]["median_smoothness"]


def test_the_even_morph_flips_the_distance_morphs_voxels_in_its_order_as_many_each_step(chairs):
    a, b = chairs[:2], chairs[2:4]
    da, db = (np.asarray(distance.signed_distance(jnp.asarray(x))) for x in (a, b))
    even = reference_paths.morph_paths("even_distance_morph", a, b, da, db, 11)
    flat = even.reshape(2, 11, -1)
    for p in range(2):
        flips = a[p] != b[p]
        changed = (flat[p, 1:] != flat[p, :-1]).sum(axis=1)  # voxels flipped by each of the 10 steps
        assert changed.sum() == flips.sum()  # each flips once: the path is monotone
        assert changed.max() - changed.min() <= 1
        # a voxel that crosses earlier in the distance morph never flips later in the even one
        crossing = (da[p] / np.where(flips, da[p] - db[p], 1.0))[flips]
        step = np.argmax(flat[p, :, flips.ravel()] != a[p][flips][:, None], axis=1)
        order = np.argsort(crossing, kind="stable")
        assert np.all(np.diff(step[order]) >= 0)
    rows, _ = reference_paths.reference_scores(chairs, chairs, steps=11)
    by = {r["morph"]: r for r in rows}
    assert by["even_distance_morph"]["fraction_monotone"] == 1.0
    assert by["even_distance_morph"]["median_smoothness"] > by["distance_morph"]["median_smoothness"]


def test_the_even_count_path_of_two_shapes_follows_from_their_counts():
    a = np.zeros((1, 32, 32, 32), bool)
    b = np.zeros_like(a)
    a[0, :10, :10, :10] = True  # 1,000 voxels
    b[0, 5:15, :10, :10] = True  # 1,000 voxels, 500 of them shared
    # each of 10 steps removes 50 and adds 50: the size stays 1,000, each step's IoU is 950 / 1,050
    got = reference_paths.even_count_lowest_step_iou(a, b, 11)
    assert got == pytest.approx([950 / 1050])
    grow = np.zeros_like(a)
    grow[0, :20, :10, :10] = True  # a inside it: only additions, 100 a step; the first is the lowest
    assert reference_paths.even_count_lowest_step_iou(a, grow, 11) == pytest.approx([1000 / 1100])
    assert reference_paths.even_count_lowest_step_iou(a, a, 11) == pytest.approx([1.0])
