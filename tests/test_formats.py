"""Voxel file formats: round trips, the resize rule, an independent reader, and bad input."""

import io
import warnings

import numpy as np
import pytest
import scipy.io
import trimesh
from binvox import Binvox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lerpnet.data import (
    OpenSurfaceWarning,
    VoxelFormatError,
    fit_to_resolution,
    load_binvox,
    load_voxels,
    save_binvox,
    voxelize_mesh,
)

SHAPENET_GLOB = "shapenetvox32_sample/ShapeNetVox32/03001627/*/model.binvox"
_fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _random_grid(seed: int, n: int = 32, density: float = 0.1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n, n)) < density


# ---- binvox ----


@_fast
@given(n=st.integers(1, 40), density=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_binvox_round_trip_random_grids(tmp_path, n, density, seed):
    grid = _random_grid(seed, n, density)
    path = tmp_path / "g.binvox"
    save_binvox(path, grid, translate=(0.5, -1.25, 2.0), scale=0.75)
    voxels, header = load_binvox(path)
    np.testing.assert_array_equal(voxels, grid)
    assert header.dims == (n, n, n)
    assert header.translate == (0.5, -1.25, 2.0) and header.scale == 0.75


def test_binvox_long_runs_split_at_255(tmp_path):
    """A full grid is 32768 ones: the writer must split it into one-byte runs."""
    path = tmp_path / "full.binvox"
    save_binvox(path, np.ones((32, 32, 32), bool))
    assert load_voxels(path).all()
    body = path.read_bytes().split(b"data\n", 1)[1]
    assert len(body) == 2 * -(-(32**3) // 255)


def test_binvox_axis_order_is_xzy_on_disk(tmp_path):
    """The file stores x-z-y order: index (x, y, z) on disk is flat x*n*n + z*n + y."""
    grid = np.zeros((4, 4, 4), bool)
    grid[1, 2, 3] = True
    path = tmp_path / "one.binvox"
    save_binvox(path, grid)
    body = np.frombuffer(path.read_bytes().split(b"data\n", 1)[1], np.uint8)
    flat = np.repeat(body[0::2], body[1::2])
    assert np.flatnonzero(flat).tolist() == [1 * 16 + 3 * 4 + 2]


def test_real_shapenet_files_match_independent_reader_both_ways(shared_data, tmp_path):
    files = sorted(shared_data.glob(SHAPENET_GLOB))
    assert len(files) == 6
    for k, f in enumerate(files):
        ours, header = load_binvox(f)
        theirs = Binvox.read(str(f), "dense")
        np.testing.assert_array_equal(ours, theirs.numpy())
        assert header.dims == tuple(theirs.dims)
        np.testing.assert_allclose(header.translate, theirs.translate)
        assert header.scale == pytest.approx(theirs.scale)
        # We write, they read.
        save_binvox(tmp_path / f"ours{k}.binvox", ours, header.translate, header.scale)
        np.testing.assert_array_equal(Binvox.read(str(tmp_path / f"ours{k}.binvox"), "dense").numpy(), ours)
        # They write, we read.
        theirs.write(str(tmp_path / f"theirs{k}.binvox"))
        np.testing.assert_array_equal(load_voxels(tmp_path / f"theirs{k}.binvox"), ours)
        assert load_voxels(f).mean() > 0.02  # a real chair, not an empty read


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda b: b.replace(b"#binvox 1", b"#binvix 1"), "not a binvox v1"),
        (lambda b: b[:-3], "odd number of bytes"),
        (lambda b: b[:-2], "covers"),
        (lambda b: b.replace(b"dim 8 8 8", b"dim 8 8 4"), "not cubic"),
        (lambda b: b.replace(b"dim 8 8 8", b"dim 6 6 6"), "covers"),
        (lambda b: b.replace(b"dim 8 8 8\n", b""), "no 'dim' line"),
        (lambda b: b.replace(b"data\n", b"dat\n"), "unexpected binvox header line"),
        (lambda b: b.split(b"data\n")[0], "before the 'data' line"),
        (lambda b: b.replace(b"scale 1", b"scale x"), "malformed"),
        (lambda b: b[:-2] + bytes([7, b[-1]]), "not 0 or 1"),
        (lambda b: b[:-2] + bytes([b[-2], 0]), "zero-length run"),
    ],
)
def test_corrupt_binvox_names_file_and_problem(tmp_path, mutate, problem):
    good = tmp_path / "good.binvox"
    save_binvox(good, _random_grid(0, 8, 0.3))
    bad = tmp_path / "bad.binvox"
    bad.write_bytes(mutate(good.read_bytes()))
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_voxels(bad)
    assert str(bad) in str(info.value)
    assert isinstance(info.value, ValueError)


def _mutate(data: bytes, kind: int, pos: int, value: int, length: int) -> bytes:
    pos %= len(data) + 1
    if kind == 0:
        return data[:pos]
    if kind == 1:
        return data[:pos] + bytes([value]) + data[pos + 1 :]
    if kind == 2:
        return data[:pos] + bytes([value]) * length + data[pos:]
    return data[:pos] + data[pos + length :]


_mutations = dict(
    kind=st.integers(0, 3), pos=st.integers(0, 10**6), value=st.integers(0, 255), length=st.integers(1, 6)
)


def _corrupt_and_read(good, mutation):
    """Write a mutated copy of `good` and read it: the voxels, or None after a VoxelFormatError."""
    bad = good.with_name("bad" + good.suffix)
    bad.write_bytes(_mutate(good.read_bytes(), **mutation))
    try:
        voxels = load_voxels(bad)
    except VoxelFormatError as err:
        assert str(bad) in str(err)
        return None
    assert voxels.shape == (32, 32, 32) and voxels.dtype == bool
    return voxels


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**_mutations)
def test_corrupted_binvox_is_an_error_or_a_correct_read(tmp_path, **mutation):
    good = tmp_path / "good.binvox"
    save_binvox(good, _random_grid(1, 32, 0.2), translate=(0.1, 0.2, 0.3), scale=0.9)
    ours = _corrupt_and_read(good, mutation)
    if ours is None:
        return
    try:
        theirs = Binvox.read(str(tmp_path / "bad.binvox"), "dense").numpy()
    except Exception:  # the independent reader is stricter about header spacing; compare when it reads
        return
    np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".mat", ".npy", ".npz"]), **_mutations)
def test_corrupted_mat_and_numpy_files_are_an_error_or_a_mask(tmp_path, suffix, **mutation):
    grid = _random_grid(2, 30, 0.2)
    good = tmp_path / f"good{suffix}"
    if suffix == ".mat":
        scipy.io.savemat(good, {"instance": grid.astype(np.int8)})
    elif suffix == ".npy":
        np.save(good, grid.astype(np.uint8))
    else:
        np.savez_compressed(good, grid)
    _corrupt_and_read(good, mutation)


# ---- other formats ----


def test_mat_is_padded_by_one_to_32(tmp_path):
    grid = _random_grid(3, 30, 0.2)
    scipy.io.savemat(tmp_path / "a.mat", {"instance": grid.astype(np.int8)})
    voxels = load_voxels(tmp_path / "a.mat")
    assert voxels.shape == (32, 32, 32)
    np.testing.assert_array_equal(voxels[1:31, 1:31, 1:31], grid)
    assert voxels.sum() == grid.sum()


def test_real_mat_file_reads(shared_data, tmp_path):
    import tarfile

    with tarfile.open(shared_data / "3dshapenets_chair_train_vox30.tar.gz") as tar:
        member = next(m for m in tar if m.name.endswith("_1.mat"))
        (tmp_path / "c.mat").write_bytes(tar.extractfile(member).read())
    voxels = load_voxels(tmp_path / "c.mat")
    assert voxels.shape == (32, 32, 32) and 0.005 < voxels.mean() < 0.2
    assert not voxels[0].any() and not voxels[-1].any()  # the one-voxel pad


def test_npy_and_single_array_npz(tmp_path):
    grid = _random_grid(4, 32)
    np.save(tmp_path / "a.npy", grid)
    np.savez(tmp_path / "b.npz", voxels=grid.astype(np.float32))
    np.testing.assert_array_equal(load_voxels(tmp_path / "a.npy"), grid)
    np.testing.assert_array_equal(load_voxels(tmp_path / "b.npz"), grid)


@pytest.mark.parametrize(
    "name, write, problem",
    [
        ("nan.npy", lambda p: np.save(p, np.full((8, 8, 8), np.nan)), "NaN"),
        ("half.npy", lambda p: np.save(p, np.full((8, 8, 8), 0.5)), r"other than 0 and 1: \[0.5\]"),
        ("255.npy", lambda p: np.save(p, np.full((8, 8, 8), 255, np.uint8)), "other than 0 and 1"),
        ("flat.npy", lambda p: np.save(p, np.zeros((8, 8, 4))), "cubic"),
        ("two.npz", lambda p: np.savez(p, a=np.zeros((8,) * 3), b=np.zeros((8,) * 3)), "exactly one array"),
        ("nokey.mat", lambda p: scipy.io.savemat(p, {"voxels": np.zeros((30,) * 3, np.int8)}), "no 'instance'"),
        ("text.mat", lambda p: p.write_text("hello"), "not a readable MATLAB"),
        ("obj.npy", lambda p: np.save(p, np.array([[[None]]]), allow_pickle=True), "got dtype object"),
        ("a.vox", lambda p: p.write_bytes(b"VOX "), "unknown voxel file type '.vox'"),
        ("empty.off", lambda p: p.write_text("OFF\n0 0 0\n"), "mesh"),
    ],
)
def test_bad_files_raise_voxel_format_error(tmp_path, name, write, problem):
    path = tmp_path / name
    write(path)
    with pytest.raises(VoxelFormatError, match=problem) as info:
        load_voxels(path)
    assert str(path) in str(info.value)


def test_save_binvox_refuses_non_masks(tmp_path):
    with pytest.raises(VoxelFormatError, match="other than 0 and 1"):
        save_binvox(tmp_path / "x.binvox", np.full((4, 4, 4), 2))


@pytest.mark.parametrize(
    "translate, scale", [((np.nan, 0, 0), 1.0), ((0, 0, 0), np.inf), ((0, 0), 1.0), (("a", 0, 0), 1.0)]
)
def test_save_binvox_refuses_what_load_binvox_rejects(tmp_path, translate, scale):
    path = tmp_path / "x.binvox"
    with pytest.raises(VoxelFormatError, match="three finite numbers and one") as info:
        save_binvox(path, np.zeros((4, 4, 4), bool), translate=translate, scale=scale)
    assert str(path) in str(info.value) and not path.exists()


def test_save_binvox_refuses_grids_over_the_dims_cap(tmp_path, monkeypatch):
    from lerpnet.data import formats

    monkeypatch.setattr(formats, "MAX_GRID_SIDE", 8)  # the real cap is 1024: too big to allocate in a test
    with pytest.raises(VoxelFormatError, match="outside 1..8"):
        save_binvox(tmp_path / "x.binvox", np.zeros((9, 9, 9), bool))
    save_binvox(tmp_path / "ok.binvox", np.zeros((8, 8, 8), bool))
    assert load_binvox(tmp_path / "ok.binvox")[0].shape == (8, 8, 8)


def test_save_binvox_keeps_full_float_precision(tmp_path):
    translate, scale = (0.1 + 0.2, -1 / 3, 1e-7), 0.7071067811865476
    save_binvox(tmp_path / "x.binvox", np.zeros((4, 4, 4), bool), translate=np.array(translate), scale=np.float32(scale))
    header = load_binvox(tmp_path / "x.binvox")[1]
    assert header.translate == translate  # exactly, not to 6 digits
    assert header.scale == float(np.float32(scale))


@pytest.mark.parametrize(
    "line",
    [b"dim 8 0_8 8", b"dim 8 8 8 8", b"dim 8 8 +8", b"dim 8 8 8.0", b"translate 1_0 0 0", b"translate 0 0",
     b"translate inf 0 0", b"scale 1 2", b"scale 0x1", b"scale 1e5000"],
)
def test_binvox_header_numbers_are_parsed_strictly(tmp_path, line):
    """Python's int()/float() accept '0_8', '+8', 'inf', ...: the header must not."""
    save_binvox(tmp_path / "good.binvox", np.zeros((8, 8, 8), bool))
    key = line.split()[0]
    good = tmp_path.joinpath("good.binvox").read_bytes()
    old = next(ln for ln in good.split(b"\n") if ln.startswith(key))
    bad = tmp_path / "bad.binvox"
    bad.write_bytes(good.replace(old, line))
    with pytest.raises(VoxelFormatError, match="malformed|finite|not cubic") as info:
        load_voxels(bad)
    assert str(bad) in str(info.value)


def test_binvox_header_accepts_what_binvox_writes(tmp_path):
    save_binvox(tmp_path / "g.binvox", np.ones((8, 8, 8), bool))
    data = tmp_path.joinpath("g.binvox").read_bytes()
    data = data.replace(b"translate 0.0 0.0 0.0", b"translate -0.5 .25 1.5e-02").replace(b"scale 1.0", b"scale 1")
    tmp_path.joinpath("h.binvox").write_bytes(data)
    header = load_binvox(tmp_path / "h.binvox")[1]
    assert header.translate == (-0.5, 0.25, 0.015) and header.scale == 1.0


# ---- the resize rule ----


def test_downsampling_is_any_full_pooling():
    grid = np.zeros((64, 64, 64), bool)
    grid[63, 0, 17] = True  # one voxel keeps its 2x2x2 block full
    grid[:, 10, 10] = True  # a one-voxel-thin line survives whole
    out = fit_to_resolution(grid, 32)
    expected = np.zeros((32, 32, 32), bool)
    expected[31, 0, 8] = True
    expected[:, 5, 5] = True
    np.testing.assert_array_equal(out, expected)


def test_downsampling_128_and_256_matches_repeated_pooling():
    grid = _random_grid(5, 128, 0.001)
    twice = fit_to_resolution(fit_to_resolution(grid, 64), 32)
    np.testing.assert_array_equal(fit_to_resolution(grid, 32), twice)


def test_small_grids_are_centred_and_padded():
    grid = np.ones((31, 31, 31), bool)
    out = fit_to_resolution(grid, 32)
    assert out[:31, :31, :31].all() and out.sum() == 31**3  # odd leftover goes after the shape
    assert fit_to_resolution(np.ones((30,) * 3, bool), 32)[1:31, 1:31, 1:31].all()


def test_non_multiple_sizes_pad_then_pool():
    """50 -> k=2: pooled to 25, then centred in 32 (3 empty layers before, 4 after)."""
    out = fit_to_resolution(np.ones((50,) * 3, bool), 32)
    assert out.sum() == 25**3 and out[3:28, 3:28, 3:28].all()


def test_load_voxels_applies_the_rule_to_binvox_64(tmp_path):
    grid = _random_grid(6, 64, 0.01)
    save_binvox(tmp_path / "g.binvox", grid)
    np.testing.assert_array_equal(load_voxels(tmp_path / "g.binvox"), grid.reshape(32, 2, 32, 2, 32, 2).any((1, 3, 5)))


# ---- meshes ----


@pytest.mark.parametrize("suffix", [".off", ".obj", ".stl", ".ply"])
def test_meshes_voxelise_as_centred_solids_filling_the_grid(tmp_path, suffix):
    mesh = trimesh.creation.box(extents=(1.0, 2.0, 4.0))
    mesh.apply_translation((5.0, -3.0, 1.0))  # placement in model space must not matter
    path = tmp_path / f"box{suffix}"
    mesh.export(path)
    voxels = load_voxels(path)
    spans = [np.flatnonzero(voxels.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    assert [s.size for s in spans] == [8, 16, 32]  # longest side fills the grid, ratios kept
    assert [(s[0], 31 - s[-1]) for s in spans] == [(12, 12), (8, 8), (0, 0)]  # centred
    assert voxels.sum() == 8 * 16 * 32  # solid: the inside is filled


def test_mesh_loader_reads_off_as_modelnet_ships_it(tmp_path):
    buf = io.StringIO()
    mesh = trimesh.creation.icosphere(subdivisions=2)
    buf.write(f"OFF\n{len(mesh.vertices)} {len(mesh.faces)} 0\n")
    buf.writelines(f"{x} {y} {z}\n" for x, y, z in mesh.vertices)
    buf.writelines(f"3 {a} {b} {c}\n" for a, b, c in mesh.faces)
    (tmp_path / "s.off").write_text(buf.getvalue())
    voxels = load_voxels(tmp_path / "s.off")
    assert voxels[16, 16, 16] and 0.4 < voxels.mean() < 0.6  # a filled ball (pi/6 of the cube)


def _open_box(subdivisions: int = 0) -> trimesh.Trimesh:
    """A unit box without its top face (two triangles), optionally subdivided first."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    for _ in range(subdivisions):
        box = box.subdivide()
    keep = ~((box.face_normals[:, 2] > 0.9) & (box.triangles_center[:, 2] > 0.49))
    box.update_faces(keep)
    return box


def test_open_box_stays_a_shell_and_says_so(tmp_path):
    """Nothing is enclosed: the documented answer is the surface shell, with a warning naming the file."""
    path = tmp_path / "open.off"
    _open_box().export(path)
    with pytest.warns(OpenSurfaceWarning, match=f"{path}.*encloses no volume"):
        voxels = load_voxels(path)
    assert voxels.sum() == 32**3 - 30 * 30 * 31  # five walls, one voxel thick
    assert not voxels[1:31, 1:31, 1:].any()  # hollow and open at the top


def test_closed_box_is_solid_without_warning(tmp_path):
    path = tmp_path / "closed.off"
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_voxels(path).all()


def test_small_holes_do_not_let_the_outside_in():
    """A box missing one small triangle (a hole under a voxel wide) is filled; only the hole's voxel
    stays empty."""
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0)).subdivide().subdivide().subdivide()
    holed = box.copy()
    holed.update_faces(np.arange(1, len(box.faces)))
    assert not holed.is_watertight
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        voxels = voxelize_mesh(holed, 32, "holed")
    assert voxels.sum() >= 32**3 - 2 and voxels[1:31, 1:31, 1:31].all()


def test_flat_sheet_is_one_layer_with_a_warning():
    sheet = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], faces=[[0, 1, 2], [0, 2, 3]])
    with pytest.warns(OpenSurfaceWarning):
        voxels = voxelize_mesh(sheet, 32, "sheet")
    assert voxels.sum() == 32 * 32 and voxels[:, :, 15:17].sum() == 32 * 32  # one layer, centred


def test_watertight_thin_mesh_is_not_reported_open():
    plate = trimesh.creation.box(extents=(1.0, 1.0, 0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        voxels = voxelize_mesh(plate, 32, "plate")
    assert voxels.any(axis=(0, 1)).sum() <= 2


def test_span_sets_the_longest_side_like_3d_shapenets():
    """span=24 in a 32 grid: the longest side covers voxels 4..27, as the 3D ShapeNets sets do."""
    voxels = voxelize_mesh(trimesh.creation.box(extents=(0.5, 1.0, 2.0)), 32, span=24)
    z = np.flatnonzero(voxels.any(axis=(0, 1)))
    assert (z[0], z[-1]) == (4, 27)
    assert np.flatnonzero(voxels.any(axis=(1, 2))).size in (6, 7)


@pytest.mark.parametrize("hole, filled", [(1, True), (2, True), (3, False)])
def test_fill_rule_seals_holes_up_to_two_voxels_wide(hole, filled):
    """The documented rule, on a voxel surface: a hollow cube whose wall has a hole x hole gap."""
    from lerpnet.data.meshes import solid_voxels

    surface = np.zeros((32, 32, 32), bool)
    surface[4:28, 4:28, 4:28] = True
    surface[5:27, 5:27, 5:27] = False
    surface[4, 10 : 10 + hole, 10 : 10 + hole] = False  # the hole, in the x = 4 wall
    solid = solid_voxels(surface)
    assert solid[5:27, 5:27, 5:27].all() == filled
    assert not solid[4, 10 : 10 + hole, 10 : 10 + hole].any()  # the hole itself stays open
    assert not (solid & ~surface)[:4].any() and not solid[28:].any()  # nothing outside the box
