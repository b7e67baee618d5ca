"""Pairs and shape selection."""

import numpy as np
import pytest

from lerpnet.allpairs.shapes import dataset_parts, encode_shapes, pair_list, pairs_by_id, select_shapes, shape_count
from lerpnet.configs.interpolate import get_config
from lerpnet.data import Dataset


def test_pair_list_counts_and_order():
    assert pair_list(3, "all").tolist() == [[i, j] for i in range(3) for j in range(3)]
    assert pair_list(4, "unique").tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    with pytest.raises(ValueError, match="pair mode"):
        pair_list(3, "some")
    for n in (1, 2, 5, 37):  # the definitions, as int32 rows
        unique, every = pair_list(n, "unique"), pair_list(n, "all")
        assert unique.dtype == every.dtype == np.int32
        np.testing.assert_array_equal(unique, np.stack(np.triu_indices(n, 1), axis=1))
        np.testing.assert_array_equal(every, np.stack(np.divmod(np.arange(n * n), n), axis=1))


def test_shapes_come_from_splits_in_order_with_rotated_copies_last():
    grid = lambda k: np.full((32, 32, 32), k % 2 == 0)  # noqa: E731
    canonical = Dataset(np.stack([grid(0), grid(1)]), ("a", "b"), np.stack([grid(2)]), ("v",))
    rotated = Dataset(np.stack([grid(k) for k in range(4)]), ("a_1", "a_2", "b_1", "b_2"), canonical.val_voxels,
                      ("v",))
    cfg = get_config().shapes
    cfg.split = "val+train+rotated"
    shapes = select_shapes(cfg, 4, dataset_parts(canonical, rotated))
    assert shapes.ids == ("v", "a", "b", "a_2") and shapes.splits == ("val", "train", "train", "rotated")
    with pytest.raises(ValueError, match="num_shapes=9 but split 'val\\+train\\+rotated' of the dataset has only 5"):
        select_shapes(cfg, 9, dataset_parts(canonical, rotated))
    cfg.split = "val+rotated"
    with pytest.raises(ValueError, match="shapes.split must be splits from \\('val', 'train'\\)"):
        select_shapes(cfg, 0, dataset_parts(canonical))


def test_shape_count_is_what_select_shapes_returns_where_the_config_alone_says():
    grid = lambda k: np.full((32, 32, 32), k % 2 == 0)  # noqa: E731
    parts = dataset_parts(Dataset(np.stack([grid(0), grid(1), grid(2)]), ("a", "b", "c"), np.stack([grid(3)]), ("v",)))
    cfg = get_config().shapes
    assert shape_count(cfg, 3) == len(select_shapes(cfg, 3, parts).ids) == 3  # a capped split
    assert shape_count(cfg, 0) is None and len(select_shapes(cfg, 0, parts).ids) == 4  # the dataset decides
    cfg.source, cfg.ids = "ids", "c, v,,a"
    assert shape_count(cfg, 0) == len(select_shapes(cfg, 0, parts).ids) == 3
    assert shape_count(cfg, 0, files=("x.binvox", "y.binvox")) == 2  # files on the command line win
    cfg.ids = "c, a, c"
    assert shape_count(cfg, 0) is None  # nothing to compile for: select_shapes refuses the list
    with pytest.raises(ValueError, match="the same shape is listed twice"):
        select_shapes(cfg, 0, parts)
    cfg.source, cfg.files = "files", "x.binvox, y.binvox, z.binvox"
    assert shape_count(cfg, 0) == 3


def test_pairs_by_id_names_the_bad_entry():
    assert pairs_by_id("b:a, a:c", ("a", "b", "c")) == [(1, 0), (0, 2)]
    with pytest.raises(ValueError, match="export.pairs entry 'a:x' must be 'idA:idB'"):
        pairs_by_id("a:x", ("a", "b", "c"))


def test_shapenet_files_are_turned_z_up_and_named_by_their_model_id(tmp_path):
    from lerpnet.data import procedural_chairs, save_binvox, to_z_up

    chair = procedural_chairs(1, seed=2)[0]
    shapenet = tmp_path / "1a2b3c" / "model.binvox"
    shapenet.parent.mkdir()
    save_binvox(shapenet, to_z_up(chair, "y"))  # as ShapeNet stores it: y-up (the turn is its own inverse)
    save_binvox(tmp_path / "mine.binvox", chair)
    shapes = select_shapes(get_config("").shapes, 0, {}, files=(str(shapenet), str(tmp_path / "mine.binvox")))
    assert shapes.ids == ("1a2b3c", "mine.binvox")
    np.testing.assert_array_equal(shapes.voxels[0], chair)
    np.testing.assert_array_equal(shapes.voxels[1], chair)
    config = get_config("").shapes
    config.up_axis = "z"  # said explicitly, it wins
    stored = select_shapes(config, 0, {}, files=(str(shapenet), str(tmp_path / "mine.binvox")))
    np.testing.assert_array_equal(stored.voxels[0], to_z_up(chair, "y"))


@pytest.mark.parametrize("n, batch, calls", [(5, 8, [5]), (8, 8, [8]), (11, 4, [4, 4, 4])])
def test_encode_shapes_batches_only_past_the_batch_and_keeps_the_order(n, batch, calls):
    """N <= batch is one call on the N grids (no padding to the batch); more are `batch` a call."""
    seen = []

    def encode(params, x):
        seen.append(x.shape[0])
        return params * x.reshape(len(x), -1).sum(axis=1)[:, None].astype(np.float32)

    voxels = np.zeros((n, 4, 4, 4), bool)
    for k in range(n):
        voxels[k].flat[:k] = True
    z = encode_shapes(encode, np.float32(2.0), voxels, batch)
    assert seen == calls
    np.testing.assert_array_equal(np.asarray(z)[:, 0], 2.0 * np.arange(n))
