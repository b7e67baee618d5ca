"""Exports: files that round-trip, meshes that close, pictures of the expected layout."""

import numpy as np
import pytest
import trimesh
from PIL import Image

from lerpnet.data import BinvoxHeader, load_binvox, load_voxels, to_z_up
from lerpnet.export import (MESH_FORMATS, MeshOptions, drop_small_pieces, export_steps, figure_rows, save_mesh,
                            voxel_mesh)

STEPS = 4


def cube(x0: int, size: int = 8) -> np.ndarray:
    grid = np.zeros((32, 32, 32), bool)
    grid[x0 : x0 + size, 10 : 10 + size, 2 : 2 + size] = True
    return grid


def test_voxel_mesh_is_closed_and_bounds_the_voxels():
    mesh = voxel_mesh(cube(3))
    assert mesh.is_watertight
    # The 0.5 level set of a 0/1 grid lies half a voxel outside the outermost voxel centres.
    np.testing.assert_allclose(mesh.bounds, [[2.5, 9.5, 1.5], [10.5, 17.5, 9.5]], atol=1e-6)
    assert voxel_mesh(np.zeros((32, 32, 32), bool)) is None


def test_export_steps_writes_readable_binvox_meshes_strip_and_gif(tmp_path):
    grids = np.stack([cube(2 * s) for s in range(STEPS)])
    grids[1] = False  # an empty step: binvox yes, mesh no
    written = export_steps(tmp_path, grids, "pair_0_1", image_size=64)
    assert all(p.exists() for p in written)
    for s in range(STEPS):
        np.testing.assert_array_equal(load_voxels(tmp_path / f"pair_0_1_step{s:02d}.binvox"), grids[s])
        assert (tmp_path / f"pair_0_1_step{s:02d}.obj").exists() == (s != 1)
    mesh = trimesh.load(tmp_path / "pair_0_1_step03.ply")
    assert mesh.is_watertight and mesh.bounds[0][0] == 5.5
    strip = Image.open(tmp_path / "pair_0_1_strip.png")
    assert strip.size[0] == STEPS * 64
    gif = Image.open(tmp_path / "pair_0_1.gif")
    assert gif.n_frames == 2 * STEPS - 2  # forward and back, no repeated ends
    first = np.asarray(gif.convert("RGB"))
    assert (first != 255).any(), "the first frame shows no shape"


def test_figure_rows_lays_out_inputs_reconstructions_and_steps(tmp_path):
    path = np.stack([cube(2 * s) for s in range(STEPS)])
    rows = [(cube(0), path, cube(6)), (cube(6), path[::-1], cube(0))]
    out = figure_rows(tmp_path / "figure.png", rows, [("a", "b"), ("b", "a")], image_size=48)
    width, height = Image.open(out).size
    assert width == (STEPS + 2) * 48 and height == 2 * (48 + 14)


CUBE_BOUNDS = np.array([[2.5, 9.5, 1.5], [10.5, 17.5, 9.5]])  # cube(3): voxels x 3..10, y 10..17, z 2..9


def reloaded(path) -> trimesh.Trimesh:
    mesh = trimesh.load(path, force="mesh")
    assert mesh.is_watertight, f"{path.name} is not watertight after reloading"
    return mesh


@pytest.mark.parametrize("surface", ["marching_cubes", "smooth", "cubes"])
def test_every_surface_and_format_reloads_watertight_with_the_expected_bounds(tmp_path, surface):
    mesh = voxel_mesh(cube(3), MeshOptions(surface=surface))
    for fmt in MESH_FORMATS:
        bounds = reloaded(save_mesh(tmp_path / f"cube.{fmt}", mesh)).bounds
        # Smoothing rounds the corners and moves the faces by less than a third of a voxel.
        np.testing.assert_allclose(bounds, CUBE_BOUNDS, atol=0.3 if surface == "smooth" else 1e-5)
    if surface == "cubes":
        assert mesh.volume == pytest.approx(cube(3).sum())  # exact voxel boxes
    else:
        assert mesh.volume < cube(3).sum()  # chamfered or rounded corners


def test_y_up_and_world_coordinates_from_a_binvox_header(tmp_path):
    y_up = voxel_mesh(cube(3), MeshOptions(up="y"))
    # (x, y, z) -> (31 - x, z, y): the turn lerpnet.data.to_z_up undoes.
    np.testing.assert_allclose(y_up.bounds, [[20.5, 1.5, 9.5], [28.5, 9.5, 17.5]], atol=1e-6)
    header = BinvoxHeader(dims=(32, 32, 32), translate=(-1.0, 2.0, 0.5), scale=3.2)
    world = voxel_mesh(cube(3), MeshOptions(placement=header))
    # Voxel i spans [t + s i / 32, t + s (i + 1) / 32].
    np.testing.assert_allclose(world.bounds, np.array(header.translate) + 0.1 * (CUBE_BOUNDS + 0.5), atol=1e-6)
    assert reloaded(save_mesh(tmp_path / "world.glb", world)).bounds == pytest.approx(world.bounds)
    with pytest.raises(ValueError, match="placement is for a 64"):
        voxel_mesh(cube(3), MeshOptions(placement=BinvoxHeader(dims=(64, 64, 64))))
    with pytest.raises(ValueError, match="up axis"):
        MeshOptions(up="x")


def test_floating_pieces_below_the_threshold_are_dropped():
    grid = cube(3)
    grid[20, 20, 20] = grid[20, 21, 20] = True  # a floating piece of two voxels
    grid[11, 18, 10] = True  # touches the cube at a corner only: part of it
    kept = drop_small_pieces(grid, min_voxels=3)
    assert not kept[20, 20, 20] and kept[11, 18, 10] and kept.sum() == cube(3).sum() + 1
    np.testing.assert_array_equal(drop_small_pieces(grid, 0), grid)
    assert len(voxel_mesh(grid).split(only_watertight=False)) == 3  # cube, corner voxel, floating piece
    assert len(voxel_mesh(grid, MeshOptions(min_piece_voxels=3)).split(only_watertight=False)) == 2
    lone = np.zeros((32, 32, 32), bool)
    lone[5, 5, 5] = True
    assert drop_small_pieces(lone, 10).sum() == 1  # the largest piece always stays


def test_export_steps_writes_y_up_binvox_with_the_header_and_a_turntable(tmp_path):
    grids = np.stack([cube(2 * s) for s in range(STEPS)])
    header = BinvoxHeader(dims=(32, 32, 32), translate=(0.25, -0.5, 0.0), scale=0.8)
    written = export_steps(tmp_path, grids, "p", ("off", "glb"), image_size=48, style="publication",
                           mesh=MeshOptions(up="y", placement=header, surface="cubes"), turntable=True)
    assert {p.suffix for p in written} == {".binvox", ".off", ".glb", ".png", ".gif"}
    voxels, read_header = load_binvox(tmp_path / "p_step02.binvox")
    np.testing.assert_array_equal(voxels, to_z_up(grids[2], "y"))
    assert read_header.translate == pytest.approx(header.translate) and read_header.scale == pytest.approx(0.8)
    mesh = reloaded(tmp_path / "p_step02.off")
    occupied = np.argwhere(voxels)
    expected = np.array(header.translate) + 0.8 * np.array([occupied.min(0), occupied.max(0) + 1]) / 32
    np.testing.assert_allclose(mesh.bounds, expected, atol=1e-5)
    with Image.open(tmp_path / "p_turntable.gif") as gif:
        assert gif.n_frames == 36 and gif.size == (48, 48)


def test_real_shapenet_chairs_go_back_to_their_own_axes_and_place(shared_data):
    files = sorted((shared_data / "shapenetvox32_sample").rglob("model.binvox"))[:3]
    assert files, "no ShapeNetVox32 files in the shared data"
    for path in files:
        raw, header = load_binvox(path)  # y-up, as ShapeNet ships it
        grid = to_z_up(raw, "y")  # lerpnet's pose
        occupied = np.argwhere(raw)
        expected = np.array(header.translate) + header.scale * np.array([occupied.min(0), occupied.max(0) + 1]) / 32
        for surface in ("marching_cubes", "smooth"):
            mesh = voxel_mesh(grid, MeshOptions(surface=surface, up="y", placement=header, min_piece_voxels=4))
            assert mesh.is_watertight, f"{path.parent.name} {surface}"
            tolerance = header.scale / 32 * (0.3 if surface == "smooth" else 1e-4)
            np.testing.assert_allclose(mesh.bounds, expected, atol=tolerance)
