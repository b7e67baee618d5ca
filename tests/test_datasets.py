"""Datasets: layouts, z-up convention, de-duplication, the split, and the .npz cache."""

import tarfile

import numpy as np
import pytest
import scipy.io

from lerpnet.data import VoxelFormatError, dataset_config, load_dataset, save_binvox, to_z_up
from lerpnet.data import datasets

MODELNET_TAR = "3dshapenets_chair_train_vox30.tar.gz"


def _chair_like(seed: int, n: int = 30) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n, n)) < 0.1


def _write_modelnet_tree(root, models):
    """3D ShapeNets layout: volumetric_data/chair/30/train/chair_<id>_<rot>.mat, 12 rotations each."""
    folder = root / "volumetric_data" / "chair" / "30" / "train"
    folder.mkdir(parents=True)
    for model_id, grid in models.items():
        for rot in range(1, 13):
            turned = np.rot90(grid, k=rot - 1, axes=(0, 1))
            scipy.io.savemat(folder / f"chair_{model_id}_{rot}.mat", {"instance": turned.astype(np.int8)})
    return root


@pytest.fixture
def modelnet_tree(tmp_path):
    grids = {f"{k:09d}": _chair_like(k) for k in range(5)}
    grids["000000009"] = grids["000000002"]  # an exact duplicate, as in ModelNet10
    root = _write_modelnet_tree(tmp_path / "src", grids)
    # The released chair folder also holds a night stand: it must not count as a chair.
    stray = root / "volumetric_data/chair/30/train/night_stand_000000112_1.mat"
    scipy.io.savemat(stray, {"instance": _chair_like(99).astype(np.int8)})
    return root


def _cfg(tmp_path, **kw):
    return dataset_config(cache_dir=str(tmp_path / "cache"), **kw)


def test_config_rejects_unknown_fields():
    with pytest.raises(KeyError, match="num_shape"):
        dataset_config(num_shape=3)


def test_procedural_split_is_disjoint_deterministic_and_sized():
    cfg = dataset_config(num_shapes=40, val_fraction=0.25)
    a, b = load_dataset(cfg), load_dataset(cfg)
    assert a.train_voxels.shape == (30, 32, 32, 32) and a.val_voxels.shape == (10, 32, 32, 32)
    assert a.train_voxels.dtype == bool
    assert a.train_ids == b.train_ids and a.val_ids == b.val_ids
    assert not set(a.train_ids) & set(a.val_ids)
    other = load_dataset(dataset_config(num_shapes=40, val_fraction=0.25, seed=1))
    assert other.val_ids != a.val_ids


def test_modelnet_tree_dedup_rotations_and_split(modelnet_tree, tmp_path):
    data = load_dataset(_cfg(tmp_path, source="modelnet", path=str(modelnet_tree), val_fraction=0.2))
    ids = set(data.train_ids) | set(data.val_ids)
    assert ids == {f"chair_{k:09d}" for k in range(5)}  # the copy (larger id) is dropped
    assert len(data.val_ids) == 1
    everything = load_dataset(
        _cfg(tmp_path, source="modelnet", path=str(modelnet_tree), val_fraction=0.2, rotations="all")
    )
    assert everything.val_ids == data.val_ids  # validation stays canonical
    assert len(everything.train_ids) == 12 * len(data.train_ids)
    assert everything.train_ids[:2] == (f"{data.train_ids[0]}_1", f"{data.train_ids[0]}_2")
    np.testing.assert_array_equal(everything.train_voxels[0], data.train_voxels[0])
    kept = load_dataset(_cfg(tmp_path, source="modelnet", path=str(modelnet_tree), dedup=False, val_fraction=0))
    assert len(kept.train_ids) == 6


def test_modelnet_tar_reads_like_the_tree(modelnet_tree, tmp_path):
    tar_path = tmp_path / "vox.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(modelnet_tree / "volumetric_data", arcname="volumetric_data")
    from_tree = load_dataset(_cfg(tmp_path, source="modelnet", path=str(modelnet_tree)))
    from_tar = load_dataset(_cfg(tmp_path, source="modelnet", path=str(tar_path)))
    assert from_tar.train_ids == from_tree.train_ids and from_tar.val_ids == from_tree.val_ids
    np.testing.assert_array_equal(from_tar.train_voxels, from_tree.train_voxels)


def test_cache_is_used_and_keyed_by_content(modelnet_tree, tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, source="modelnet", path=str(modelnet_tree))
    first = load_dataset(cfg)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(datasets, "decode_voxels", no_decoding)
    cached = load_dataset(cfg)
    np.testing.assert_array_equal(cached.train_voxels, first.train_voxels)
    assert cached.train_ids == first.train_ids
    # Changing one file's content changes the key: the cache is rebuilt (so decoding is needed).
    scipy.io.savemat(
        modelnet_tree / "volumetric_data/chair/30/train/chair_000000000_1.mat",
        {"instance": np.zeros((30, 30, 30), np.int8)},
    )
    with pytest.raises(AssertionError, match="decoded although"):
        load_dataset(cfg)


def test_folder_source_dedups_and_names_bad_files(tmp_path):
    folder = tmp_path / "shapes"
    folder.mkdir()
    grid = _chair_like(7, 32)
    np.save(folder / "a.npy", grid)
    save_binvox(folder / "b.binvox", grid)  # same content in another format
    np.save(folder / "c.npy", _chair_like(8, 32))
    (folder / "notes.txt").write_text("ignored: not a voxel file")
    data = load_dataset(_cfg(tmp_path, source="folder", path=str(folder), val_fraction=0))
    assert data.train_ids == ("a.npy", "c.npy")
    np.save(folder / "d.npy", np.full((32, 32, 32), 0.5))
    with pytest.raises(VoxelFormatError, match="d.npy"):
        load_dataset(_cfg(tmp_path, source="folder", path=str(folder)))


def test_empty_directories_raise_voxel_format_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in ("folder", "modelnet", "shapenet_vox32"):
        with pytest.raises(VoxelFormatError, match="no .* found") as info:
            load_dataset(_cfg(tmp_path, source=source, path=str(empty)))
        assert str(empty) in str(info.value)


def test_bad_configs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_dataset(dataset_config(source="shapenet"))
    with pytest.raises(ValueError, match="needs cfg.path"):
        load_dataset(dataset_config(source="folder"))
    with pytest.raises(ValueError, match="rotations='all' needs source='modelnet'"):
        load_dataset(dataset_config(rotations="all"))
    with pytest.raises(VoxelFormatError, match="not a readable tar"):
        (tmp_path / "x.tar.gz").write_bytes(b"not gzip")
        load_dataset(_cfg(tmp_path, source="modelnet", path=str(tmp_path / "x.tar.gz")))


def test_y_up_to_z_up_is_the_documented_rotation():
    grid = np.zeros((4, 4, 4), bool)
    grid[0, 1, 2] = True  # (x, y, z) -> (-x, z, y) = (3, 2, 1) on a side-4 grid
    turned = to_z_up(grid, "y")
    assert np.argwhere(turned).tolist() == [[3, 2, 1]]
    # A proper rotation: applying it twice is the identity (a 180-degree turn), no mirror.
    rng_grid = _chair_like(9, 8)
    np.testing.assert_array_equal(to_z_up(to_z_up(rng_grid, "y"), "y"), rng_grid)
    assert np.linalg.det(np.array([[-1, 0, 0], [0, 0, 1], [0, 1, 0]])) == pytest.approx(1.0)


def test_shapenet_layout_is_rotated_to_z_up(tmp_path):
    root = tmp_path / "ShapeNetVox32" / "03001627" / "abc123"
    root.mkdir(parents=True)
    pole = np.zeros((32, 32, 32), bool)
    pole[16, :, 16] = True  # a y-up pole
    save_binvox(root / "model.binvox", pole)
    data = load_dataset(_cfg(tmp_path, source="shapenet_vox32", path=str(tmp_path), val_fraction=0))
    assert data.train_ids == ("abc123",)
    assert data.train_voxels[0][15, 16, :].all() and data.train_voxels[0].sum() == 32  # now along z


# ---- the real data ----


def _back_offset(voxels: np.ndarray) -> np.ndarray:
    """Mean (x, y) of a chair's top 30% of voxels minus the mean of all: where its back is."""
    offsets = []
    for grid in voxels:
        idx = np.argwhere(grid)
        z = idx[:, 2]
        top = idx[z > z.min() + 0.7 * (z.max() - z.min())]
        offsets.append(top[:, :2].mean(0) - idx[:, :2].mean(0))
    return np.mean(offsets, axis=0)


def test_real_modelnet_dedup_gives_839_chairs(shared_data, tmp_path):
    data = load_dataset(_cfg(tmp_path, source="modelnet", path=str(shared_data / MODELNET_TAR)))
    ids = set(data.train_ids) | set(data.val_ids)
    assert len(ids) == 839 and len(data.val_ids) == 84
    listing = (shared_data / "modelnet10_chair_train_duplicate_groups.txt").read_text()
    groups = [line.split() for line in listing.splitlines()]
    for group in groups:
        assert [g in ids for g in sorted(group)] == [True] + [False] * (len(group) - 1)


def test_real_shapenet_and_modelnet_chairs_face_the_same_way(shared_data, tmp_path):
    shapenet = load_dataset(
        _cfg(tmp_path, source="shapenet_vox32", path=str(shared_data / "shapenetvox32_sample"), val_fraction=0)
    )
    assert len(shapenet.train_ids) == 6
    modelnet = load_dataset(_cfg(tmp_path, source="modelnet", path=str(shared_data / MODELNET_TAR), num_shapes=60))
    for voxels in (shapenet.train_voxels, modelnet.train_voxels):
        # Tallest along z; the back (top part) sits towards +x, centred in y.
        extents = np.array([[np.ptp(np.argwhere(g)[:, a]) for a in range(3)] for g in voxels]).mean(0)
        assert extents.argmax() == 2
        dx, dy = _back_offset(voxels)
        assert dx > 2 and abs(dy) < 1
