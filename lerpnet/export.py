"""Files people open to look at interpolation paths: binvox grids, meshes, PNG strips, figures, GIFs.

Everything here takes host bool grids (z-up, lerpnet's canonical orientation) and writes files;
nothing computes. Meshes come from scikit-image's marching cubes and are written by trimesh, so
they open in any mesh viewer; pictures come from `lerpnet.render` (solid shaded voxels, fast on CPU).
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from lerpnet import render
from lerpnet.data import save_binvox

MESH_FORMATS = ("obj", "ply")


def step_labels(steps: int) -> list[str]:
    """'t=0.0' ... 't=1.0' for `steps` evenly spaced interpolation weights."""
    return [f"t={s / (steps - 1):.1f}" for s in range(steps)]


def voxel_mesh(grid: np.ndarray) -> trimesh.Trimesh | None:
    """The surface of a bool grid as a triangle mesh in voxel units (None for an empty grid)."""
    grid = np.asarray(grid, bool)
    if not grid.any():
        return None
    # Padding closes the surface where the shape touches the grid's border.
    verts, faces, normals, _ = marching_cubes(np.pad(grid, 1).astype(np.float32), level=0.5)
    return trimesh.Trimesh(vertices=verts - 1.0, faces=faces, vertex_normals=normals, process=False)


def export_steps(
    out_dir: str | pathlib.Path,
    grids: np.ndarray,
    name: str,
    mesh_formats: Sequence[str] = MESH_FORMATS,
    gif_fps: float = 6.0,
    image_size: int = 160,
) -> list[pathlib.Path]:
    """All files for one path of T steps: `<name>_step00.binvox` and meshes per step, a strip, a GIF.

    grids: bool (T, 32, 32, 32). An empty step gets a binvox file but no mesh (it has no surface).
    Returns the paths written.
    """
    unknown = set(mesh_formats) - set(MESH_FORMATS)
    if unknown:
        raise ValueError(f"mesh formats must be among {MESH_FORMATS}, got {sorted(unknown)}")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grids = np.asarray(grids, bool)
    labels = step_labels(len(grids))
    written = []
    for s, grid in enumerate(grids):
        stem = f"{name}_step{s:02d}"
        save_binvox(out_dir / f"{stem}.binvox", grid)
        written.append(out_dir / f"{stem}.binvox")
        mesh = voxel_mesh(grid)
        for fmt in mesh_formats if mesh is not None else ():
            mesh.export(out_dir / f"{stem}.{fmt}")
            written.append(out_dir / f"{stem}.{fmt}")
    strip = render.montage(grids, len(grids), labels, image_size)
    written.append(render.save_png(out_dir / f"{name}_strip.png", strip))
    frames = [render.render_voxels(g, image_size) for g in grids]
    # There and back again, so the loop has no jump.
    written.append(render.save_gif(out_dir / f"{name}.gif", frames + frames[-2:0:-1], gif_fps))
    return written


def figure_rows(
    path: str | pathlib.Path,
    rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    names: Sequence[tuple[str, str]],
    image_size: int = 128,
) -> pathlib.Path:
    """A figure like the 2018 study's Figure 6, one pair per row: the input i, its reconstruction
    (the t=0 decode), the in-between decodes, the reconstruction of j (t=1), the input j.

    rows: (input_i, path (T, 32,32,32), input_j) per pair; names: the two inputs' labels per pair
    (drawn under the inputs; keep them short, a cell fits about size/6 characters).
    """
    grids, labels = [], []
    for (first, steps, last), (name_i, name_j) in zip(rows, names, strict=True):
        inner = step_labels(len(steps))
        inner[0], inner[-1] = "recon t=0", "recon t=1"
        grids += [first, *steps, last]
        labels += [name_i, *inner, name_j]
    ncols = len(grids) // len(rows)
    return render.save_png(path, render.montage(grids, ncols, labels, image_size))
