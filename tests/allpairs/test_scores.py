"""Path scores on hand-made shapes whose answers are known in closed form."""

import numpy as np
import pytest

from lerpnet.allpairs.scores import (
    OrderedPairScores,
    by_split,
    largest_part,
    midpoint_novelty,
    nearest_iou,
    path_scores,
    plausible,
    reference_matrix,
    reversed_scores,
)
from lerpnet.bitpack import pack_voxels
from lerpnet.configs.interpolate import get_config
from lerpnet.metrics import packed_iou

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


def test_largest_part_and_plausible_paths():
    two_pieces = np.zeros((32, 32, 32), bool)
    two_pieces[:8, :8, :8] = True
    two_pieces[20:24, 20:24, 20:24] = True
    assert largest_part(two_pieces) == 512 / (512 + 64)
    assert largest_part(np.zeros((32, 32, 32), bool)) == 1.0
    cfg = get_config().plausible
    scores = {
        "i": np.array([0, 0, 0, 0, 1]), "j": np.array([1, 1, 1, 1, 1]),
        "smoothness": np.array([0.9, 0.1, 0.9, 0.9, 1.0]),
        "iou_start": np.array([0.8, 0.8, 0.2, 0.8, 1.0]), "iou_end": np.full(5, 0.8),
        "occupancy_start": np.full(5, 0.05), "occupancy_end": np.full(5, 0.10),
        "occupancy": np.array([[0.05, 0.07, 0.1], [0.05, 0.07, 0.1], [0.05, 0.07, 0.1], [0.05, 0.3, 0.1],
                               [0.1, 0.1, 0.1]]),
    }
    # ok; jumps; input not reconstructed; midpoint three times fuller than either input; i == j
    np.testing.assert_array_equal(plausible(scores, cfg), [True, False, False, False, False])


def random_paths(rng, p: int, steps: int) -> np.ndarray:
    """(p, steps, 32, 32, 32) random grids, each step a blob of its own density, so no score is trivial."""
    return rng.random((p, steps, 32, 32, 32)) < rng.uniform(0.02, 0.4, (p, steps, 1, 1, 1))


def all_scores(path, start, end, reference, tolerance):
    s = path_scores(path, start, end, tolerance)
    s |= midpoint_novelty(path, *reference, reverse=True)
    return {k: np.asarray(v) for k, v in s.items()}


@pytest.mark.parametrize("steps", [2, 5, 6])
def test_every_score_of_a_reversed_path_is_derived_exactly(steps):
    rng = np.random.default_rng(steps)
    path = random_paths(rng, 6, steps)
    start, end = random_paths(rng, 6, 1)[:, 0], random_paths(rng, 6, 1)[:, 0]
    reference = reference_matrix(random_paths(rng, 5, 1)[:, 0])
    forward = all_scores(path, start, end, reference, 0.02)
    direct = all_scores(path[:, ::-1], end, start, reference, 0.02)
    derived = reversed_scores(forward)
    assert derived.keys() == direct.keys()
    for key, value in direct.items():
        np.testing.assert_array_equal(derived[key], value, err_msg=key)


def test_reversing_an_even_path_without_its_other_midpoint_is_refused_and_unknown_scores_too():
    rng = np.random.default_rng(0)
    path = random_paths(rng, 2, 4)
    reference = reference_matrix(path[:, 0])
    scores = {k: np.asarray(v) for k, v in (path_scores(path, path[:, 0], path[:, -1])
                                            | midpoint_novelty(path, *reference)).items()}
    with pytest.raises(ValueError, match="even number of steps"):
        reversed_scores(scores)
    with pytest.raises(ValueError, match="no rule for reversing the score 'new_score'"):
        reversed_scores({"occupancy": scores["occupancy"][:, :3], "new_score": scores["smoothness"]})


def test_every_ordered_pair_comes_from_the_unique_pairs_and_the_constant_paths_block_by_block():
    n, steps = 4, 3
    rng = np.random.default_rng(1)
    unique = {"iou_start": rng.random(6), "iou_end": rng.random(6), "occupancy": rng.random((6, steps)),
              "novelty_iou": rng.random(6)}
    diagonal = {k: rng.random((n, *v.shape[1:])) for k, v in unique.items()}
    iu, ju = np.triu_indices(n, 1)
    pairs = np.stack([iu, ju], axis=1)
    ordered = OrderedPairScores(n)
    for rows in (slice(0, 4), slice(4, 6)):  # blocks arrive one at a time, the constant paths last
        ordered.add(pairs[rows], {k: v[rows] for k, v in unique.items()})
    with pytest.raises(ValueError, match="12 of the 16 ordered pairs were scored"):
        ordered.result()
    ordered.add(np.repeat(np.arange(n), 2).reshape(n, 2), diagonal)
    out = ordered.result()
    assert out.keys() == unique.keys() and out["occupancy"].shape == (n * n, steps)
    for row, (i, j) in enumerate(zip(iu, ju)):
        assert out["iou_start"][i * n + j] == unique["iou_start"][row]
        assert out["iou_start"][j * n + i] == unique["iou_end"][row]
        np.testing.assert_array_equal(out["occupancy"][j * n + i], unique["occupancy"][row, ::-1])
    for i in range(n):
        np.testing.assert_array_equal(out["occupancy"][i * n + i], diagonal["occupancy"][i])


def test_medians_by_split_pair():
    scores = {"i": np.array([0, 0, 1]), "j": np.array([1, 2, 2]), **{k: np.array([0.2, 0.4, 0.9]) for k in (
        "iou_start", "iou_end", "smoothness", "monotonicity", "monotonic_violation", "novelty_iou")},
              "occupancy": np.array([[0.1, 0.2, 0.3]] * 3)}
    groups = by_split(scores, ("val", "train", "val"), np.array([True, True, False]))
    assert set(groups) == {"train-val", "val-val"} and groups["val-val"]["paths"] == 1
    assert groups["train-val"]["median_smoothness"] == 0.2 and groups["val-val"]["median_smoothness"] == 0.4
