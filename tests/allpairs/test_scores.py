"""Path scores on hand-made shapes whose answers are known in closed form."""

import numpy as np
import pytest

from lerpnet.bitpack import pack_voxels
from lerpnet.metrics import packed_iou
from lerpnet.allpairs.scores import nearest_iou, path_scores, reference_matrix

STEPS = 5


def box(x0: int, size: int = 8) -> np.ndarray:
    """A size^3 cube whose low corner is at (x0, 4, 4)."""
    grid = np.zeros((32, 32, 32), bool)
    grid[x0 : x0 + size, 4 : 4 + size, 4 : 4 + size] = True
    return grid


def sliding_box_path() -> np.ndarray:
    """(1, T, 32,32,32): the 8-cube moved one voxel along x per step."""
    return np.stack([box(s) for s in range(STEPS)])[None]


def test_identical_endpoints_give_iou_one_everywhere():
    shape = box(3)
    path = np.broadcast_to(shape, (2, STEPS, 32, 32, 32))
    s = path_scores(path, path[:, 0], path[:, -1])
    for key in ("iou_start", "iou_end", "smoothness", "monotonicity"):
        np.testing.assert_array_equal(np.asarray(s[key]), 1.0, err_msg=key)
    np.testing.assert_array_equal(np.asarray(s["iou_to_start"]), 1.0)
    np.testing.assert_array_equal(np.asarray(s["step_iou"]), 1.0)
    np.testing.assert_array_equal(np.asarray(s["monotonic_violation"]), 0.0)
    np.testing.assert_allclose(np.asarray(s["occupancy"]), 512 / 32768)


def test_translated_box_scores_match_closed_form():
    path = sliding_box_path()
    s = path_scores(path, path[:, 0], path[:, -1])
    shift = np.arange(STEPS)
    # An 8-cube and its translate by d along x overlap in (8-d) of 8+d columns.
    np.testing.assert_allclose(np.asarray(s["iou_to_start"])[0], (8 - shift) / (8 + shift), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["iou_to_end"])[0], (8 - shift[::-1]) / (8 + shift[::-1]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(s["step_iou"])[0], 7 / 9, rtol=1e-6)
    np.testing.assert_allclose(float(s["smoothness"][0]), 7 / 9, rtol=1e-6)
    assert float(s["monotonicity"][0]) == 1.0
    assert float(s["monotonic_violation"][0]) == 0.0
    assert float(s["iou_start"][0]) == 1.0 and float(s["iou_end"][0]) == 1.0


def test_a_path_that_turns_back_is_not_monotone_and_endpoints_are_checked_against_the_inputs():
    there_and_back = np.stack([box(0), box(2), box(4), box(2), box(0)])[None]
    target = box(4)[None]
    s = path_scores(there_and_back, there_and_back[:, 0], target)
    # Steps 3 and 4 move back: IoU to the start rises (and IoU to the end falls) on 2 of the 4 steps.
    assert float(s["monotonicity"][0]) == 0.5
    np.testing.assert_allclose(float(s["monotonic_violation"][0]), 1 - 6 / 10, rtol=1e-6)
    np.testing.assert_allclose(float(s["iou_end"][0]), 4 / 12, rtol=1e-6)  # last step is box(0), end is box(4)
    np.testing.assert_allclose(float(s["smoothness"][0]), 6 / 10, rtol=1e-6)


def test_packed_and_bool_inputs_agree_and_empty_grids_match_each_other():
    path = sliding_box_path()
    path = np.concatenate([path, np.zeros_like(path)])  # second path: all empty
    bool_scores = path_scores(path, path[:, 0], path[:, -1])
    packed = pack_voxels(path)
    packed_scores = path_scores(packed, packed[:, 0], packed[:, -1])
    for key, value in bool_scores.items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(packed_scores[key]), err_msg=key)
    assert float(bool_scores["smoothness"][1]) == 1.0  # empty vs empty is perfect agreement
    assert float(bool_scores["occupancy"][1].max()) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_iou_equals_brute_force_packed_iou(seed):
    rng = np.random.default_rng(seed)
    shapes = rng.random((6, 32, 32, 32)) < rng.uniform(0.02, 0.3, (6, 1, 1, 1))
    reference = rng.random((9, 32, 32, 32)) < rng.uniform(0.02, 0.3, (9, 1, 1, 1))
    reference[4] = shapes[2]  # an exact copy must be found with IoU 1
    best, index = nearest_iou(shapes, *reference_matrix(reference))
    brute = np.asarray(packed_iou(pack_voxels(shapes)[:, None], pack_voxels(reference)[None]))
    np.testing.assert_allclose(np.asarray(best), brute.max(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(index), brute.argmax(axis=1))
    assert int(index[2]) == 4 and float(best[2]) == 1.0
