"""Datasets: layouts, z-up convention, de-duplication, the split, and the .npz cache."""

import errno
import io
import re
import tarfile

import numpy as np
import pytest
import scipy.io
import trimesh

from lerpnet.data import (
    CacheWarning,
    OpenSurfaceWarning,
    VoxelFormatError,
    dataset_config,
    file_ids,
    load_dataset,
    save_binvox,
    to_z_up,
)
from lerpnet.data import cache, sources

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

    monkeypatch.setattr(sources, "decode_voxels", no_decoding)
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
    data = load_dataset(_cfg(tmp_path, source="folder", path=str(folder), val_fraction=0, up_axis="z"))
    assert data.train_ids == ("a.npy", "c.npy")
    np.save(folder / "d.npy", np.full((32, 32, 32), 0.5))
    with pytest.raises(VoxelFormatError, match="d.npy"):
        load_dataset(_cfg(tmp_path, source="folder", path=str(folder), up_axis="z"))


def test_empty_directories_raise_voxel_format_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for source in ("folder", "modelnet", "shapenet_vox32", "modelnet_meshes"):
        with pytest.raises(VoxelFormatError, match="no .* found") as info:
            load_dataset(_cfg(tmp_path, source=source, path=str(empty), up_axis="z"))
        assert str(empty) in str(info.value)


def test_bad_configs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_dataset(dataset_config(source="shapenet"))
    with pytest.raises(ValueError, match="data.up_axis: source 'folder' files do not say which way is up"):
        load_dataset(dataset_config(source="folder"))
    with pytest.raises(VoxelFormatError, match="data.path of source 'folder'.*pass --config.data.path"):
        load_dataset(dataset_config(source="folder", up_axis="z"))
    with pytest.raises(ValueError, match="data.up_axis must be"):
        load_dataset(dataset_config(up_axis="x"))
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


# ---- where the data is: data.path or LERPNET_DATA ----


def test_empty_path_takes_the_usual_name_inside_lerpnet_data(modelnet_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("LERPNET_DATA", str(modelnet_tree))  # holds volumetric_data/
    from_env = load_dataset(_cfg(tmp_path, source="modelnet"))
    given = load_dataset(_cfg(tmp_path, source="modelnet", path=str(modelnet_tree / "volumetric_data")))
    assert from_env.train_ids == given.train_ids and len(from_env.train_ids) > 0


@pytest.mark.parametrize("source, name", [("modelnet", "volumetric_data"), ("modelnet_meshes", "ModelNet10"),
                                          ("shapenet_vox32", "ShapeNetVox32")])
def test_missing_data_is_one_line_saying_where_to_get_it(tmp_path, monkeypatch, source, name):
    monkeypatch.delenv("LERPNET_DATA", raising=False)
    with pytest.raises(VoxelFormatError, match="LERPNET_DATA.*--config.data.path") as unset:
        load_dataset(_cfg(tmp_path, source=source))
    monkeypatch.setenv("LERPNET_DATA", str(tmp_path))
    with pytest.raises(VoxelFormatError, match=f"LERPNET_DATA={tmp_path}: holds none of .*{name}") as empty:
        load_dataset(_cfg(tmp_path, source=source))
    with pytest.raises(VoxelFormatError, match="dataset not found") as missing:
        load_dataset(_cfg(tmp_path, source=source, path=str(tmp_path / "nowhere")))
    for info in (unset, empty, missing):
        message = str(info.value)
        assert "\n" not in message and "http" in message and "--config.data.path" in message
    assert str(tmp_path / "nowhere") in str(missing.value)


def test_no_config_names_a_path_outside_the_repository():
    from lerpnet.configs import modelnet_chairs

    for variant in (None, "smoke", "cpu"):
        assert modelnet_chairs.get_config(variant).data.path == ""


# ---- ids ----


def test_file_ids_are_model_ids_short_and_safe():
    ids = file_ids(["/a/ShapeNetVox32/03001627/1a2b3c/model.binvox", "x/my chair (2).binvox", "p/q/" + "z" * 200 + ".npy",
                    "one/a.npy", "two/a.npy"])
    assert ids[0] == "1a2b3c"
    assert ids[1] == "my_chair_2_.binvox"
    assert len(ids[2]) == 64
    assert ids[3] != ids[4] and ids[3].startswith("a.npy-") and len(set(ids)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) for i in ids)


# ---- the ModelNet10 mesh source ----


def _write_modelnet10(root, shapes):
    """ModelNet10 layout: <root>/ModelNet10/<category>/{train,test}/<name>.off, boxes as OFF files."""
    for rel, mesh in shapes.items():
        path = root / "ModelNet10" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        mesh.export(path)
    return root / "ModelNet10"


def _box(x, y, z):
    return trimesh.creation.box(extents=(x, y, z))


@pytest.fixture
def modelnet10(tmp_path):
    open_top = _box(1, 1, 1)
    open_top.update_faces(~((open_top.face_normals[:, 2] > 0.9)))
    return _write_modelnet10(tmp_path / "src", {
        "chair/train/chair_0001.off": _box(1, 1, 2),
        "chair/train/chair_0002.off": _box(1, 2, 2),
        "chair/train/chair_0003.off": _box(2, 1, 2),
        "chair/train/chair_0004.off": open_top,
        "chair/test/chair_0005.off": _box(1, 1, 3),
        "chair/test/chair_0006.off": _box(1, 2, 2),  # the same shape as chair_0002: must not validate
        "table/train/table_0001.off": _box(3, 3, 1),
    })


def test_modelnet10_meshes_split_by_folder_voxelised_like_3d_shapenets(modelnet10, tmp_path):
    with pytest.warns(OpenSurfaceWarning, match="1 of 6 meshes .*chair_0004.off"):
        data = load_dataset(_cfg(tmp_path, source="modelnet_meshes", path=str(modelnet10)))
    assert data.train_ids == ("chair_0001", "chair_0002", "chair_0003", "chair_0004")
    assert data.val_ids == ("chair_0005",)
    tall = data.train_voxels[0]  # 1 x 1 x 2: z-up, longest side over voxels 4..27, solid
    z = np.flatnonzero(tall.any(axis=(0, 1)))
    assert (z[0], z[-1]) == (4, 27) and np.flatnonzero(tall.any(axis=(1, 2))).size in (12, 13)
    assert tall[16, 16, 16] and not data.train_voxels[3][16, 16, 16]  # closed boxes filled, the open one a shell
    category_folder = load_dataset(_cfg(tmp_path, source="modelnet_meshes", path=str(modelnet10 / "chair")))
    assert category_folder.train_ids == data.train_ids
    tables = load_dataset(_cfg(tmp_path, source="modelnet_meshes", path=str(modelnet10), category="table"))
    assert tables.train_ids == ("table_0001",) and tables.val_ids == ()


def test_modelnet10_meshes_are_cached_and_capped_by_split(modelnet10, tmp_path, monkeypatch):
    with pytest.warns(OpenSurfaceWarning):
        first = load_dataset(_cfg(tmp_path, source="modelnet_meshes", path=str(modelnet10), num_shapes=3))
    assert len(first.train_ids) == 2 and len(first.val_ids) == 1  # 4 train : 1 val of 5 distinct, kept
    monkeypatch.setattr(sources, "decode_voxels", lambda *a, **k: pytest.fail("decoded although cached"))
    monkeypatch.setenv("LERPNET_DATA", str(modelnet10.parent))
    again = load_dataset(_cfg(tmp_path, source="modelnet_meshes", num_shapes=3))
    assert again.train_ids == first.train_ids and again.val_ids == first.val_ids


# ---- the cache: corrupt ones rebuilt, unwritable ones skipped ----


def test_corrupt_cache_is_rebuilt_with_a_warning(modelnet_tree, tmp_path):
    cfg = _cfg(tmp_path, source="modelnet", path=str(modelnet_tree))
    first = load_dataset(cfg)
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    good = cache_file.read_bytes()
    # A torn file, garbage, and a readable archive whose voxels no longer match its checksum.
    arrays = dict(np.load(cache_file))
    arrays["voxels"] = arrays["voxels"] ^ 1
    tampered = io.BytesIO()
    np.savez(tampered, **arrays)
    for damage in (good[: len(good) // 2], b"not an npz", tampered.getvalue()):
        cache_file.write_bytes(damage)
        with pytest.warns(CacheWarning, match=f"dataset cache {cache_file} is unreadable.*rebuilding it"):
            rebuilt = load_dataset(cfg)
        np.testing.assert_array_equal(rebuilt.train_voxels, first.train_voxels)
        assert rebuilt.train_ids == first.train_ids
        assert cache.read_cache(cache_file)["voxels"].shape[0] == 6  # readable again (6 canonical files)


def test_unwritable_cache_warns_and_returns_the_decoded_data(modelnet_tree, tmp_path, monkeypatch):
    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cache, "atomic_open", full_disk)
    cfg = _cfg(tmp_path, source="modelnet", path=str(modelnet_tree))
    with pytest.warns(CacheWarning, match="could not write the dataset cache .*No space left on device.*continuing"):
        data = load_dataset(cfg)
    assert len(data.train_ids) + len(data.val_ids) == 5
    assert not list((tmp_path / "cache").glob("*.npz"))
