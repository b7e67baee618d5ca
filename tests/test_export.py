"""Exports: files that round-trip, meshes that close, pictures of the expected layout."""

import numpy as np
import trimesh
from PIL import Image

from lerpnet.data import load_voxels
from lerpnet.export import export_steps, figure_rows, voxel_mesh

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
