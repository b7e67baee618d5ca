"""A small NumPy voxel renderer: solid, shaded cubes seen from the front-left, above (z-up).

Pictures of shapes are how people judge a shape model, so rendering must be cheap enough to run
inside experiments on CPU (a strip of 11 shapes takes well under a second) and need no GL stack.
Each surface voxel is drawn as an orthographic cube sprite with three shaded faces; a per-pixel
depth test picks the nearest cube. Canonical pose (see lerpnet.data): z up, chairs face -x.
"""

from __future__ import annotations

import functools
import pathlib

import numpy as np
from PIL import Image, ImageDraw

# Camera: looking from the front (-x), a little from the left (-y), and from above (+z).
_VIEW = np.array([-1.0, -0.75, 0.8])
_VIEW /= np.linalg.norm(_VIEW)
_BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)
_FACE_SHADE = {"top": 1.0, "front": 0.74, "side": 0.52}  # faces normal to +z, -x, -y
_BASE_COLOUR = np.array([0.36, 0.55, 0.80])  # light steel blue; height tints it towards white


def _screen_axes() -> tuple[np.ndarray, np.ndarray]:
    right = np.cross(_VIEW, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, _VIEW)
    return right, up


@functools.lru_cache(maxsize=8)
def _cube_sprite(scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets (relative to the cube centre), face index and edge flag of one cube's image."""
    right, up = _screen_axes()
    faces = {  # face corners of the unit cube centred at 0 (three faces visible from _VIEW)
        "top": [(-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)],
        "front": [(-1, -1, -1), (-1, 1, -1), (-1, 1, 1), (-1, -1, 1)],
        "side": [(-1, -1, -1), (1, -1, -1), (1, -1, 1), (-1, -1, 1)],
    }
    half = int(np.ceil(scale * 1.0)) + 1
    sides = 2 * half + 1
    offs, face_ids, edges = [], [], []
    for fid, corners in enumerate(faces.values()):
        pts = np.array(corners, dtype=float) * 0.5
        poly = [(half + scale * p @ right, half - scale * p @ up) for p in pts]
        fill = Image.new("L", (sides, sides))
        ImageDraw.Draw(fill).polygon(poly, fill=255, outline=255)
        rim = Image.new("L", (sides, sides))
        ImageDraw.Draw(rim).polygon(poly, outline=255)
        ys, xs = np.nonzero(np.asarray(fill))
        offs.append(np.stack([ys - half, xs - half], axis=1))
        face_ids.append(np.full(len(ys), fid))
        edges.append(np.asarray(rim)[ys, xs] > 0)
    return np.concatenate(offs), np.concatenate(face_ids), np.concatenate(edges)


def render_voxels(voxels: np.ndarray, size: int = 256) -> np.ndarray:
    """Render a z-up (R, R, R) grid to a (size, size, 3) uint8 RGB image of shaded cubes.

    The grid's bounding cube is framed so every shape of a set is drawn at the same scale.
    """
    voxels = np.asarray(voxels, dtype=bool)
    if voxels.ndim != 3:
        raise ValueError(f"render_voxels: expected a 3-D grid, got shape {voxels.shape}")
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    n = max(voxels.shape)
    # Only voxels with an empty neighbour can be seen.
    padded = np.pad(voxels, 1)
    interior = voxels.copy()
    for axis in range(3):
        for step in (1, -1):
            interior &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    centres = np.argwhere(voxels & ~interior).astype(float)
    if centres.size == 0:
        return image
    right, up = _screen_axes()
    rel = centres - (np.array(voxels.shape) - 1) / 2
    corners = (np.stack(np.meshgrid(*[[-0.5, 0.5]] * 3, indexing="ij"), -1).reshape(-1, 3)) * n
    span = max(np.ptp(corners @ right), np.ptp(corners @ up))
    scale = 0.96 * size / span  # the grid's bounding cube fills the frame
    cy = size / 2 - scale * rel @ up
    cx = size / 2 + scale * rel @ right
    depth = rel @ _VIEW  # larger is nearer the camera
    offs, face, edge = _cube_sprite(float(scale))
    py = (np.round(cy).astype(int)[:, None] + offs[None, :, 0]).ravel()
    px = (np.round(cx).astype(int)[:, None] + offs[None, :, 1]).ravel()
    d = np.repeat(depth, len(offs))
    voxel = np.repeat(np.arange(len(centres)), len(offs))
    fid = np.tile(face, len(centres))
    rim = np.tile(edge, len(centres))
    ok = (py >= 0) & (py < size) & (px >= 0) & (px < size)
    pixel = py[ok] * size + px[ok]
    # Nearest cube per pixel: sort by (pixel, -depth) and keep each pixel's first entry.
    order = np.lexsort((-d[ok], pixel))
    pixel = pixel[order]
    first = np.concatenate(([True], pixel[1:] != pixel[:-1]))
    keep = np.flatnonzero(ok)[order[first]]
    shade = np.array(list(_FACE_SHADE.values()))[fid[keep]] * np.where(rim[keep], 0.92, 1.0)
    height = centres[voxel[keep], 2] / max(n - 1, 1)
    colour = _BASE_COLOUR[None] * (0.8 + 0.2 * height[:, None]) + 0.25 * height[:, None]
    rgb = np.clip(colour * shade[:, None] * 255, 0, 255).astype(np.uint8)
    image.reshape(-1, 3)[pixel[first]] = rgb
    return image


def montage(grids, ncols: int, labels=None, size: int = 160) -> np.ndarray:
    """Render grids into one RGB image, `ncols` per row, with optional text labels under each."""
    grids = list(grids)
    if not grids:
        raise ValueError("montage: no grids to draw")
    if labels is not None and len(labels) != len(grids):
        raise ValueError(f"montage: {len(labels)} labels for {len(grids)} grids")
    ncols = max(1, min(ncols, len(grids)))
    nrows = -(-len(grids) // ncols)
    label_h = 14 if labels is not None else 0
    cell_h = size + label_h
    sheet = Image.new("RGB", (ncols * size, nrows * cell_h), tuple(int(c) for c in _BACKGROUND))
    draw = ImageDraw.Draw(sheet)
    for i, grid in enumerate(grids):
        r, c = divmod(i, ncols)
        sheet.paste(Image.fromarray(render_voxels(grid, size)), (c * size, r * cell_h))
        if labels is not None:
            draw.text((c * size + 4, r * cell_h + size), str(labels[i])[: size // 6], fill=(40, 40, 40))
    return np.asarray(sheet)


def save_png(path: str | pathlib.Path, image: np.ndarray) -> pathlib.Path:
    """Write an RGB uint8 image as PNG, creating the parent directory."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path


def save_gif(path: str | pathlib.Path, images, fps: float = 5.0) -> pathlib.Path:
    """Write RGB uint8 frames as a looping GIF (e.g. an interpolation from t=0 to t=1)."""
    path = pathlib.Path(path)
    frames = [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
    if not frames:
        raise ValueError("save_gif: no frames")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path
