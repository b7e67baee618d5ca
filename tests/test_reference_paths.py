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
