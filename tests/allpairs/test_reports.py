"""`reports.top_k`: the most novel plausible midpoints, each shape in few of them."""

import numpy as np

from lerpnet.allpairs import reports


def _scores(pairs, novelty):
    pairs = np.array(pairs)
    k = len(pairs)
    return {"i": pairs[:, 0], "j": pairs[:, 1], "novelty_iou": np.array(novelty, np.float32),
            "occupancy": np.full((k, 3), 0.1, np.float32), "nearest_reference": np.zeros(k, np.int64),
            "smoothness": np.ones(k, np.float32)}


def _solid_paths(i, j):
    grids = np.zeros((len(i), 3, 32, 32, 32), bool)
    grids[:, :, 4:8, 4:8, 4:8] = True  # one piece
    return grids


def test_top_k_is_diverse_and_most_novel_first():
    # Shape 0 is in the three most novel pairs; diversity keeps one of them and moves on.
    scores = _scores([(0, 1), (0, 2), (0, 3), (2, 3), (1, 2)], [0.1, 0.2, 0.3, 0.4, 0.5])
    top = reports.top_k(scores, np.ones(5, bool), _solid_paths, k=3, min_largest_part=0.95)
    assert [(t["i"], t["j"]) for t in top] == [(0, 1), (2, 3)]
    top = reports.top_k(scores, np.ones(5, bool), _solid_paths, k=3, min_largest_part=0.95, max_per_shape=3)
    assert [(t["i"], t["j"]) for t in top] == [(0, 1), (0, 2), (0, 3)]
    assert top[0]["path"].shape == (3, 32, 32, 32)


def test_diverse_screening_takes_the_same_pairs_as_the_plain_greedy_scan():
    # More pairs than one screened chunk (4096), shapes used up part way: the chunked scan must take
    # exactly the pairs, in order, that taking them one at a time does.
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 300, 20_000), rng.integers(0, 300, 20_000)
    order = rng.permutation(20_000)
    for max_per_shape, count in ((1, 10_000), (2, 10_000), (3, 50)):
        uses, expected = np.zeros(300, int), []
        for p in order:
            if len(expected) < count and uses[i[p]] < max_per_shape and uses[j[p]] < max_per_shape:
                expected.append(p)
                uses[i[p]] += 1
                uses[j[p]] += 1
        assert reports._diverse(order, i, j, max_per_shape, count).tolist() == expected
