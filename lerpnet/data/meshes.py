"""Meshes to voxel grids: the surface voxelised with trimesh, then what it encloses filled.

Research meshes (ModelNet, ShapeNet) are often not watertight: single-sided sheets, open boxes,
surfaces with small holes. The rule, so that every mesh gets one documented answer:
- Voxels the surface passes through are full (trimesh's voxeliser at pitch 1).
- Every empty voxel the surface encloses (not reachable from outside the grid through empty
  voxels) is full: a closed box becomes a solid block.
- Holes up to 2 voxels wide do not let the outside in: the enclosure is also found with the surface
  thickened by one voxel, and its interior kept (the hole's own voxels stay empty).
- A surface that encloses nothing (an open box, a cup, a single sheet) stays its one-voxel shell,
  which is what thin walls are at 32^3; a mesh that is not watertight and yields only a shell
  gets an `OpenSurfaceWarning` naming the file (datasets: one warning counting them all). Open
  parts of a mesh that also encloses something are shells too, without a warning.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.ndimage

from lerpnet.data.reading import VoxelFormatError

if TYPE_CHECKING:  # annotations only: the functions that make or read meshes import it
    import trimesh

MESH_SUFFIXES = (".off", ".obj", ".stl", ".ply")
_CUBE = np.ones((3, 3, 3), dtype=bool)  # 26-neighbourhood


class OpenSurfaceWarning(UserWarning):
    """A non-watertight mesh enclosed no volume and was voxelised as its surface shell."""

    def __init__(self, source: str | os.PathLike, message: str = ""):
        super().__init__(message or f"{source}: the mesh is not watertight and encloses no volume: "
                                    "voxelised as its surface shell")
        self.source = str(source)


def voxelize_mesh(
    mesh: trimesh.Trimesh, resolution: int, source: str | os.PathLike = "mesh", span: int | None = None
) -> np.ndarray:
    """Voxelise a mesh by the module's rule, centred, with its longest side spanning `span` voxels.

    The mesh is scaled so its longest side runs from voxel centre to voxel centre over `span`
    voxels (default: the whole grid) and centred in the (resolution,)*3 grid; axes stay the mesh's
    (x, y, z) -> array axes (0, 1, 2).
    """
    import trimesh  # here: half a second to import, and only meshes need it

    span = resolution if span is None else span
    if not 1 <= span <= resolution:
        raise ValueError(f"span must be in 1..{resolution}, got {span}")
    if mesh.is_empty or mesh.faces.size == 0:
        raise VoxelFormatError(source, "mesh has no faces")
    if mesh.vertices.ndim != 2 or mesh.vertices.shape[1] != 3:
        raise VoxelFormatError(source, f"mesh vertices have {mesh.vertices.shape[-1]} coordinates, need 3")
    bounds = mesh.bounds
    extent = float((bounds[1] - bounds[0]).max())
    if not np.isfinite(extent) or extent <= 0:
        raise VoxelFormatError(source, "mesh has a degenerate or non-finite bounding box")
    factor = max(span - 1, 1e-3) / extent
    shift = (resolution - 1) / 2 - (bounds[0] + bounds[1]) / 2 * factor
    try:
        scaled = mesh.copy()
        scaled.apply_transform(trimesh.transformations.scale_and_translate(factor, shift))
        points = scaled.voxelized(pitch=1.0).points
        watertight = bool(mesh.is_watertight)
    except Exception as err:  # trimesh raises many types on degenerate geometry
        raise VoxelFormatError(source, f"cannot voxelise the mesh ({type(err).__name__}: {err})") from None
    idx = np.round(points).astype(np.int64)
    idx = idx[np.all((idx >= 0) & (idx < resolution), axis=1)]
    surface = np.zeros((resolution,) * 3, dtype=bool)
    surface[tuple(idx.T)] = True
    grid = solid_voxels(surface)
    if not watertight and grid.sum() == surface.sum():
        warnings.warn(OpenSurfaceWarning(source), stacklevel=2)
    return grid


def solid_voxels(surface: np.ndarray) -> np.ndarray:
    """The surface voxels plus everything they enclose, tolerating holes up to 2 voxels wide."""
    enclosed = scipy.ndimage.binary_fill_holes(surface)
    thick = scipy.ndimage.binary_dilation(surface)  # seals holes up to 2 voxels wide
    sealed = scipy.ndimage.binary_fill_holes(thick)
    deep = sealed & ~thick  # interior at least 2 voxels from the surface
    # Back out to the surface: voxels of the sealed solid, not touching the outside, next to `deep`.
    near_deep = scipy.ndimage.binary_erosion(sealed) & scipy.ndimage.binary_dilation(deep, _CUBE)
    return enclosed | near_deep


def decode_mesh(data: bytes, source: str | os.PathLike, suffix: str, resolution: int, span: int | None = None):
    """Load mesh bytes with trimesh (scenes are merged into one mesh) and voxelise them."""
    import trimesh  # here: half a second to import, and only meshes need it

    try:
        mesh = trimesh.load(io.BytesIO(data), file_type=suffix[1:], force="mesh")
    except Exception as err:  # trimesh's parsers raise many types on bad input
        raise VoxelFormatError(source, f"not a readable {suffix} mesh ({type(err).__name__}: {err})") from None
    if not isinstance(mesh, trimesh.Trimesh):
        raise VoxelFormatError(source, f"{suffix} file holds no triangle mesh")
    return voxelize_mesh(mesh, resolution, source, span)
