"""The corruption corpus: every class of bad input, read by `load_voxels` and by the dataset loaders.

Each case must end in a `VoxelFormatError` naming the bad path, quickly (a FIFO must never be
opened: that blocks forever), and must not allocate what a header merely claims.
"""

import errno
import gzip
import io
import os
import pathlib
import tarfile
import zipfile
import zlib

import numpy as np
import pytest
import scipy.io

from lerpnet.data import VoxelFormatError, dataset_config, load_dataset, load_voxels, save_binvox
from lerpnet.data import reading

GRID = np.zeros((8, 8, 8), bool)
GRID[2:5, 3:6, 1:7] = True


def _npy_header_only(shape, descr="|u1") -> bytes:
    """An .npy whose header declares `shape` and whose data is a few bytes: a decompression bomb's
    header, without the bomb (the readers must refuse it from the header alone)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + b"\0" * 64


def _npz_of(npy: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("arr_0.npy", npy)
    return buffer.getvalue()


def _mat_declaring(side: int) -> bytes:
    """A real uncompressed .mat whose float64 'instance' dims are patched to side^3 (data left at 30^3)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"instance": np.zeros((30, 30, 30))}, do_compression=False)
    dims = np.array([30, 30, 30], "<i4").tobytes()
    assert buffer.getvalue().count(dims) == 1
    return buffer.getvalue().replace(dims, np.array([side] * 3, "<i4").tobytes())


def _write(path: pathlib.Path, data: bytes) -> pathlib.Path:
    path.write_bytes(data)
    return path


def _good_binvox(tmp: pathlib.Path) -> bytes:
    save_binvox(tmp / "good.binvox.src", GRID)
    return (tmp / "good.binvox.src").read_bytes()


# name of the bad file -> (how to make it in a folder, what the error must say)
CASES = {
    "dir.binvox": (lambda d, p: p.mkdir(), "is a directory"),
    "dangling.binvox": (lambda d, p: p.symlink_to(d / "missing.binvox"), "dangling symlink"),
    "self_loop.binvox": (lambda d, p: p.symlink_to(p), "symlink loop"),
    "loop_a.binvox": (lambda d, p: (p.symlink_to(d / "loop_b.x"), (d / "loop_b.x").symlink_to(p)), "symlink loop"),
    "fifo.binvox": (lambda d, p: os.mkfifo(p), "FIFO"),
    "zero.npy": (lambda d, p: p.symlink_to("/dev/zero"), "character device"),
    "huge.npy": (lambda d, p: p.open("wb").truncate(reading.MAX_FILE_BYTES + 1), "over the 1 GiB limit"),
    "bomb.npz": (lambda d, p: _write(p, _npz_of(_npy_header_only((1024,) * 3, "<u2"))), "2.0 GiB, over the 1 GiB limit"),
    "bomb.npy": (lambda d, p: _write(p, _npy_header_only((1024,) * 3, "<f8")), "8.0 GiB, over the 1 GiB limit"),
    "wide.npy": (lambda d, p: _write(p, _npy_header_only((2000,) * 3, "|b1")), "grid side 2000 is over the limit"),
    "bomb.mat": (lambda d, p: _write(p, _mat_declaring(640)), "2.0 GiB, over the 1 GiB limit"),
    "timedelta.npy": (lambda d, p: np.save(p, np.zeros((8,) * 3, "m8[ns]")), "got dtype timedelta64"),
    "complex.npz": (lambda d, p: np.savez(p, np.zeros((8,) * 3, complex)), "got dtype complex128"),
    "two_coordinates.obj": (lambda d, p: p.write_text("v 0 0\nv 1 0\nv 0 1\nf 1 2 3\n"), "2 coordinates"),
    "underscore_dim.binvox": (
        lambda d, p: _write(p, _good_binvox(d).replace(b"dim 8 8 8", b"dim 8 0_8 8")), "malformed"),
    "nan_translate.binvox": (
        lambda d, p: _write(p, _good_binvox(d).replace(b"translate 0.0 0.0 0.0", b"translate nan 0 0")), "malformed"),
}


@pytest.fixture
def no_permission(monkeypatch):
    """Reading as a user who may not open the file (root may open anything, so simulated)."""
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if str(path).endswith("secret.binvox"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(reading.os, "open", refuse)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(CASES))
def test_load_voxels_refuses_bad_input_naming_it(tmp_path, name):
    make, problem = CASES[name]
    path = tmp_path / name
    make(tmp_path, path)
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_voxels(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", sorted(CASES))
def test_folder_dataset_refuses_bad_input_naming_it(tmp_path, name):
    folder = tmp_path / "shapes"
    folder.mkdir()
    np.save(folder / "a_good.npy", GRID)
    make, problem = CASES[name]
    make(folder, folder / name)
    cfg = dataset_config(source="folder", path=str(folder), up_axis="z", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_dataset(cfg)
    assert str(folder / name) in str(info.value)


def test_permission_denied_names_the_file(tmp_path, no_permission):
    path = tmp_path / "secret.binvox"
    save_binvox(path, GRID)
    with pytest.raises(VoxelFormatError, match="cannot read .Permission denied") as info:
        load_voxels(path)
    assert str(path) in str(info.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["fifo.binvox", "dir.binvox", "dangling.binvox", "self_loop.binvox"])
def test_modelnet_and_shapenet_layouts_refuse_bad_entries(tmp_path, name):
    make, problem = CASES[name]
    train = tmp_path / "volumetric_data" / "chair" / "30" / "train"
    train.mkdir(parents=True)
    scipy.io.savemat(train / "chair_000000001_1.mat", {"instance": np.pad(GRID, 11).astype(np.int8)})
    bad = train / "chair_000000002_1.mat"
    make(train, bad)
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_dataset(dataset_config(source="modelnet", path=str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert str(bad) in str(info.value)
    model = tmp_path / "ShapeNetVox32" / "03001627" / "m1"
    model.parent.mkdir(parents=True)
    model.mkdir()
    make(model, model / "model.binvox")
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_dataset(dataset_config(source="shapenet_vox32", path=str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert str(model / "model.binvox") in str(info.value)


def _damaged_tarball(path: pathlib.Path) -> pathlib.Path:
    """A 3D ShapeNets-style .tar.gz damaged past its first member, where tarfile lets zlib.error out."""
    members = io.BytesIO()
    with tarfile.open(fileobj=members, mode="w") as tar:
        for k in range(4):
            data = io.BytesIO()
            grid = np.random.default_rng(k).random((30, 30, 30)) < 0.3
            scipy.io.savemat(data, {"instance": grid.astype(np.int8)})
            info = tarfile.TarInfo(f"volumetric_data/chair/30/train/chair_{k:09d}_1.mat")
            info.size = len(data.getvalue())
            tar.addfile(info, io.BytesIO(data.getvalue()))
    good = gzip.compress(members.getvalue())
    start = len(good) // 4
    _write(path, good[:start] + bytes(b ^ 0x55 for b in good[start : start + 64]) + good[start + 64 :])
    with pytest.raises(zlib.error), tarfile.open(path, "r:*") as tar:  # the case the loader must catch
        for member in tar:
            tar.extractfile(member).read()
    return path


def test_damaged_tarball_names_the_archive(tmp_path):
    tarball = _damaged_tarball(tmp_path / "vox.tar.gz")
    with pytest.raises(VoxelFormatError, match="not a readable tar archive .error: Error -3") as info:
        load_dataset(dataset_config(source="modelnet", path=str(tarball), cache_dir=str(tmp_path / "cache")))
    assert str(tarball) in str(info.value)


@pytest.mark.timeout(30)
def test_fifo_or_device_as_the_dataset_path_is_refused(tmp_path):
    fifo = tmp_path / "vox.tar.gz"
    os.mkfifo(fifo)
    with pytest.raises(VoxelFormatError, match="FIFO") as info:
        load_dataset(dataset_config(source="modelnet", path=str(fifo), cache_dir=str(tmp_path / "cache")))
    assert str(fifo) in str(info.value)
    with pytest.raises(VoxelFormatError, match="character device"):
        load_dataset(dataset_config(source="modelnet", path="/dev/zero", cache_dir=str(tmp_path / "cache")))
