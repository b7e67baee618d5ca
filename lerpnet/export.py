"""Files people open to look at interpolation paths: binvox grids, meshes, PNG strips, figures, GIFs.

Everything here takes host bool grids (z-up, lerpnet's canonical orientation) and writes files;
nothing computes. Meshes are written by trimesh, so they open in any mesh viewer (MeshLab,
Blender); `MeshOptions` says which surface (today's marching cubes, a smoothed one, or the voxel
cubes), which up axis, and where in the world (a binvox header) they go. Pictures come from
`lerpnet.render` (solid shaded voxels, fast on CPU).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.ndimage
from skimage.measure import marching_cubes

from lerpnet import files, render
from lerpnet.data import BinvoxHeader, save_binvox, to_z_up

if TYPE_CHECKING:  # annotations only: voxel_mesh imports it
    import trimesh

MESH_FORMATS = ("obj", "ply", "off", "glb")
SURFACES = ("marching_cubes", "smooth", "cubes")
UP_AXES = ("z", "y")


@dataclasses.dataclass(frozen=True)
class MeshOptions:
    """How a grid becomes a mesh.

    surface: "marching_cubes" (the 0.5 level set of the 0/1 grid: chamfered voxels), "smooth"
      (that surface after `smoothing_iterations` of Taubin smoothing: it keeps one-voxel legs,
      which marching cubes on a blurred grid would erase, and barely shrinks) or "cubes" (each
      voxel's exposed faces; where two voxels meet only along an edge, four faces share it).
    min_piece_voxels: pieces (26-connected) with fewer voxels are dropped; the largest always stays.
    up: "z" (lerpnet's) or "y" (ShapeNet, Blender's glTF, MeshLab): the same 180-degree turn as
      `lerpnet.data.to_z_up`, so a ShapeNet file read with up_axis "y" goes back to its own axes.
    placement: the binvox header of the file the grid came from (in that file's axes): vertices in
      its world coordinates instead of voxel units (voxel i spans [i - 0.5, i + 0.5]).
    """

    surface: str = "marching_cubes"
    smoothing_iterations: int = 10
    min_piece_voxels: int = 0
    up: str = "z"
    placement: BinvoxHeader | None = None

    def __post_init__(self):
        if self.surface not in SURFACES:
            raise ValueError(f"mesh surface must be one of {SURFACES}, got {self.surface!r}")
        if self.up not in UP_AXES:
            raise ValueError(f"mesh up axis must be one of {UP_AXES}, got {self.up!r}")
        if self.smoothing_iterations < 0 or self.min_piece_voxels < 0:
            raise ValueError("mesh smoothing_iterations and min_piece_voxels must be >= 0")
        if self.placement is not None and self.placement.scale <= 0:
            raise ValueError(f"mesh placement scale must be > 0, got {self.placement.scale}")


def step_labels(steps: int) -> list[str]:
    """'t=0.0' ... 't=1.0' for `steps` evenly spaced interpolation weights."""
    return [f"t={s / (steps - 1):.1f}" for s in range(steps)]


def drop_small_pieces(grid: np.ndarray, min_voxels: int) -> np.ndarray:
    """The grid without its 26-connected pieces of fewer than `min_voxels` voxels (the largest stays)."""
    grid = np.asarray(grid, bool)
    labels, count = scipy.ndimage.label(grid, structure=np.ones((3, 3, 3)))
    if count <= 1 or min_voxels <= 1:
        return grid
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0], keep[np.argmax(sizes[1:]) + 1] = False, True
    return keep[labels]


def _level_set(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Padding closes the surface where the shape touches the grid's border.
    verts, faces, _, _ = marching_cubes(np.pad(grid, 1).astype(np.float32), level=0.5)
    return verts - 1.0, faces


def _cube_faces(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every face between a full and an empty voxel, as two outward-wound triangles, corners shared."""
    padded = np.pad(grid, 1)
    quads = []
    for a in range(3):
        b, c = np.eye(3, dtype=int)[(a + 1) % 3], np.eye(3, dtype=int)[(a + 2) % 3]
        for s in (1, -1):
            full = np.argwhere(padded & ~np.roll(padded, -s, axis=a))
            centre = 2 * full + s * np.eye(3, dtype=int)[a]  # doubled coordinates: corners are integers
            ring = [(-1, -1), (1, -1), (1, 1), (-1, 1)]  # counter-clockwise seen from +a (b x c = a)
            quads.append(np.stack([centre + db * b + dc * c for db, dc in (ring if s > 0 else ring[::-1])], 1))
    corners = np.concatenate(quads)
    verts, index = np.unique(corners.reshape(-1, 3), axis=0, return_inverse=True)
    index = index.reshape(-1, 4)
    faces = np.concatenate([index[:, [0, 1, 2]], index[:, [0, 2, 3]]])
    return verts / 2.0 - 1.0, faces


def voxel_mesh(grid: np.ndarray, options: MeshOptions = MeshOptions()) -> trimesh.Trimesh | None:
    """The surface of a bool grid as a closed triangle mesh (None for an empty grid)."""
    import trimesh  # here: half a second to import, and only meshes need it

    grid = drop_small_pieces(grid, options.min_piece_voxels)
    if not grid.any():
        return None
    verts, faces = _cube_faces(grid) if options.surface == "cubes" else _level_set(grid)
    mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=options.surface == "cubes")
    if options.surface == "smooth":
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=options.smoothing_iterations)
    n = grid.shape[0]
    if options.up == "y":  # the voxel at (x, y, z) goes to (n-1-x, z, y): a rotation, windings kept
        mesh.vertices = np.stack([n - 1 - mesh.vertices[:, 0], mesh.vertices[:, 2], mesh.vertices[:, 1]], 1)
    if options.placement is not None:
        if options.placement.dims[0] != n:
            raise ValueError(f"mesh placement is for a {options.placement.dims[0]}^3 grid, this grid is {n}^3")
        p = options.placement
        mesh.vertices = np.asarray(p.translate) + p.scale * (mesh.vertices + 0.5) / n
    return mesh


def save_mesh(path: str | pathlib.Path, mesh: trimesh.Trimesh) -> pathlib.Path:
    """Write a mesh in the format its suffix names (one of MESH_FORMATS), atomically."""
    path = pathlib.Path(path)
    fmt = path.suffix.lstrip(".")
    if fmt not in MESH_FORMATS:
        raise ValueError(f"{path}: mesh format must be one of {MESH_FORMATS}")
    data = mesh.export(file_type=fmt)
    return files.write_bytes(path, data.encode() if isinstance(data, str) else data)


def export_steps(
    out_dir: str | pathlib.Path,
    grids: np.ndarray,
    name: str,
    mesh_formats: Sequence[str] = ("obj", "ply"),
    gif_fps: float = 6.0,
    image_size: int | None = None,
    *,
    style: str = "draft",
    mesh: MeshOptions = MeshOptions(),
    turntable: bool = False,
) -> list[pathlib.Path]:
    """All files for one path of T steps: `<name>_step00.binvox` and meshes per step, a strip, a GIF,
    and with `turntable` a GIF turning around the midpoint.

    grids: bool (T, 32, 32, 32). An empty step gets a binvox file but no mesh (it has no surface).
    Binvox files and meshes follow `mesh`'s up axis and placement. Returns the paths written.
    """
    unknown = set(mesh_formats) - set(MESH_FORMATS)
    if unknown:
        raise ValueError(f"mesh formats must be among {MESH_FORMATS}, got {sorted(unknown)}")
    out_dir = pathlib.Path(out_dir)
    grids = np.asarray(grids, bool)
    placement = mesh.placement or BinvoxHeader(dims=grids.shape[1:])
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for s, grid in enumerate(grids):
        stem = out_dir / f"{name}_step{s:02d}"
        # to_z_up's turn is its own inverse: it also takes z-up to y-up.
        save_binvox(stem.with_suffix(".binvox"), to_z_up(grid, mesh.up), placement.translate, placement.scale)
        written.append(stem.with_suffix(".binvox"))
        surface = voxel_mesh(grid, mesh)
        written += [save_mesh(stem.with_suffix(f".{fmt}"), surface) for fmt in mesh_formats if surface is not None]
    strip = render.montage(grids, len(grids), step_labels(len(grids)), image_size, style)
    written.append(render.save_png(out_dir / f"{name}_strip.png", strip))
    frames = render.render_set(grids, image_size, style)
    # There and back again, so the loop has no jump.
    written.append(render.save_gif(out_dir / f"{name}.gif", frames + frames[-2:0:-1], gif_fps))
    if turntable:
        turn = render.turntable(grids[len(grids) // 2], 36, image_size, style)
        written.append(render.save_gif(out_dir / f"{name}_turntable.gif", turn, 12.0))
    return written


def figure_rows(
    path: str | pathlib.Path,
    rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[tuple[str, str]],
    image_size: int | None = None,
    style: str = "draft",
) -> pathlib.Path:
    """A figure like the 2018 study's Figure 6, one pair per row: the input i, its reconstruction
    (the t=0 decode), the in-between decodes, the reconstruction of j (t=1), the input j.

    rows: (input_i, path (T, 32,32,32), input_j) per pair; names: the two inputs' labels per pair
    (drawn under the inputs; long ones are cut with an ellipsis). Every cell is at one scale.
    """
    grids, labels = [], []
    for (first, steps, last), (name_i, name_j) in zip(rows, names, strict=True):
        inner = step_labels(len(steps))
        inner[0], inner[-1] = "recon t=0", "recon t=1"
        grids += [first, *steps, last]
        labels += [name_i, *inner, name_j]
    ncols = len(grids) // len(rows)
    return render.save_png(path, render.montage(grids, ncols, labels, image_size, style))
