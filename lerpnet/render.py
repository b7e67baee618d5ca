"""A small NumPy voxel renderer: solid, shaded cubes seen from above, in two looks (draft, publication).

Pictures of shapes are how people judge a shape model, so rendering must be cheap enough to run
inside experiments on CPU (a strip of 11 shapes takes well under a second) and need no GL stack.
Each surface voxel is drawn as an orthographic cube sprite with three shaded faces; a per-pixel
depth test picks the nearest cube. Canonical pose (see lerpnet.data): z up, chairs face -x; the
camera looks from the front-left and above, and can turn about the vertical (a turntable).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lerpnet import files

AZIMUTH = math.degrees(math.atan2(-0.75, -1.0))  # the camera's direction from the shape, about +z
_ELEVATION = math.atan2(0.8, 1.25)  # radians above the horizon
_LIGHT = np.array([-0.74, -0.52, 1.0])  # at AZIMUTH: top faces 1.0, front 0.74, side 0.52 bright
_BACKGROUND = (255, 255, 255)
_BASE_COLOUR = np.array([0.36, 0.55, 0.80])  # light steel blue; height tints it towards white
_MARGIN = 0.96  # fraction of the image the framed box spans


@dataclasses.dataclass(frozen=True)
class Style:
    """How a set of shapes is drawn: cell size, framing, edge smoothing (rendering `supersample`
    times larger, then shrinking), and whether the set's occupied box fills the cell (`fill`) or
    the whole grid does (every picture of every run at one scale)."""

    size: int
    fill: bool = False
    supersample: int = 1


STYLES = {
    "draft": Style(size=160),
    "publication": Style(size=320, fill=True, supersample=3),
}


@dataclasses.dataclass(frozen=True)
class Frame:
    """What a picture shows: the scene point at the image centre and the scene length spanning it."""

    centre: tuple[float, float, float]
    extent: float


def _view(azimuth: float) -> np.ndarray:
    a = math.radians(azimuth)
    return np.array([math.cos(_ELEVATION) * math.cos(a), math.cos(_ELEVATION) * math.sin(a), math.sin(_ELEVATION)])


def _screen_axes(azimuth: float) -> tuple[np.ndarray, np.ndarray]:
    view = _view(azimuth)
    right = np.cross(view, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, view)


def box_frame(lo, hi, azimuths: Sequence[float] = (AZIMUTH,)) -> Frame:
    """The frame that fits voxels lo..hi (inclusive indices) seen from every one of `azimuths`."""
    lo, hi = np.asarray(lo, float) - 0.5, np.asarray(hi, float) + 0.5
    corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
    centre = (lo + hi) / 2
    extent = max(max(np.ptp(corners @ axis) for axis in _screen_axes(a)) for a in azimuths)
    return Frame(tuple(float(c) for c in centre), float(extent))


def set_frame(grids, fill: bool, azimuths: Sequence[float] = (AZIMUTH,)) -> Frame:
    """One frame for a set of grids: their union's occupied box (`fill`) or the whole grid."""
    grids = np.asarray(grids, bool).reshape(-1, *np.shape(grids)[-3:])
    union = grids.any(axis=0)
    if not fill or not union.any():
        return box_frame((0, 0, 0), np.array(union.shape) - 1, azimuths)
    occupied = np.argwhere(union)
    return box_frame(occupied.min(0), occupied.max(0), azimuths)


@functools.lru_cache(maxsize=16)
def _cube_sprite(scale: float, azimuth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets (relative to the cube centre), face shade and edge flag of one cube's image."""
    view = _view(azimuth)
    right, up = _screen_axes(azimuth)
    sx, sy = (1 if view[0] >= 0 else -1), (1 if view[1] >= 0 else -1)
    # The three faces seen from the camera: +z and the x and y faces turned towards it.
    faces = [([(-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)], (0, 0, 1)),
             ([(sx, -1, -1), (sx, 1, -1), (sx, 1, 1), (sx, -1, 1)], (sx, 0, 0)),
             ([(-1, sy, -1), (1, sy, -1), (1, sy, 1), (-1, sy, 1)], (0, sy, 0))]
    turn = math.radians(azimuth - AZIMUTH)  # the light turns with the camera
    light = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]]) @ _LIGHT
    half = int(np.ceil(scale)) + 1
    sides = 2 * half + 1
    offs, shades, edges = [], [], []
    for corners, normal in faces:
        pts = np.array(corners, dtype=float) * 0.5
        poly = [(half + scale * p @ right, half - scale * p @ up) for p in pts]
        fill = Image.new("L", (sides, sides))
        ImageDraw.Draw(fill).polygon(poly, fill=255, outline=255)
        rim = Image.new("L", (sides, sides))
        ImageDraw.Draw(rim).polygon(poly, outline=255)
        ys, xs = np.nonzero(np.asarray(fill))
        offs.append(np.stack([ys - half, xs - half], axis=1))
        shades.append(np.full(len(ys), max(float(np.dot(normal, light)), 0.3)))
        edges.append(np.asarray(rim)[ys, xs] > 0)
    return np.concatenate(offs), np.concatenate(shades), np.concatenate(edges)


def render_voxels(voxels: np.ndarray, size: int = 256, *, azimuth: float = AZIMUTH, frame: Frame | None = None,
                  supersample: int = 1) -> np.ndarray:
    """Render a z-up (R, R, R) grid to a (size, size, 3) uint8 RGB image of shaded cubes.

    `frame` (default: the grid's bounding cube) fixes position and scale, so a set drawn with one
    frame is drawn at one scale.
    """
    voxels = np.asarray(voxels, dtype=bool)
    if voxels.ndim != 3:
        raise ValueError(f"render_voxels: expected a 3-D grid, got shape {voxels.shape}")
    if supersample > 1:
        big = render_voxels(voxels, size * supersample, azimuth=azimuth, frame=frame)
        return np.asarray(Image.fromarray(big).resize((size, size), Image.Resampling.LANCZOS))
    frame = frame or box_frame((0, 0, 0), np.array(voxels.shape) - 1, (azimuth,))
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    # Only voxels with an empty neighbour can be seen.
    padded = np.pad(voxels, 1)
    interior = voxels.copy()
    for axis in range(3):
        for step in (1, -1):
            interior &= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    centres = np.argwhere(voxels & ~interior).astype(float)
    if centres.size == 0:
        return image
    right, up = _screen_axes(azimuth)
    rel = centres - np.array(frame.centre)
    scale = _MARGIN * size / frame.extent
    cy = size / 2 - scale * rel @ up
    cx = size / 2 + scale * rel @ right
    depth = rel @ _view(azimuth)  # larger is nearer the camera
    offs, face_shade, edge = _cube_sprite(round(float(scale), 6), float(azimuth))
    py = (np.round(cy).astype(int)[:, None] + offs[None, :, 0]).ravel()
    px = (np.round(cx).astype(int)[:, None] + offs[None, :, 1]).ravel()
    d = np.repeat(depth, len(offs))
    voxel = np.repeat(np.arange(len(centres)), len(offs))
    shade = np.tile(face_shade * np.where(edge, 0.92, 1.0), len(centres))
    ok = (py >= 0) & (py < size) & (px >= 0) & (px < size)
    pixel = py[ok] * size + px[ok]
    # Nearest cube per pixel: sort by (pixel, -depth) and keep each pixel's first entry.
    order = np.lexsort((-d[ok], pixel))
    pixel = pixel[order]
    first = np.concatenate(([True], pixel[1:] != pixel[:-1]))
    keep = np.flatnonzero(ok)[order[first]]
    height = centres[voxel[keep], 2] / max(max(voxels.shape) - 1, 1)
    colour = _BASE_COLOUR[None] * (0.8 + 0.2 * height[:, None]) + 0.25 * height[:, None]
    rgb = np.clip(colour * shade[keep, None] * 255, 0, 255).astype(np.uint8)
    image.reshape(-1, 3)[pixel[first]] = rgb
    return image


def _style(style: str, size: int | None) -> Style:
    if style not in STYLES:
        raise ValueError(f"unknown render style {style!r}: expected one of {sorted(STYLES)}")
    if size is not None and size < 8:
        raise ValueError(f"render size must be at least 8 pixels, got {size}")
    return dataclasses.replace(STYLES[style], size=size or STYLES[style].size)


def render_set(grids, size: int | None = None, style: str = "draft") -> list[np.ndarray]:
    """One image per grid, all in one frame (a strip or a GIF at one scale); size overrides the style's."""
    look = _style(style, size)
    frame = set_frame(grids, look.fill)
    return [render_voxels(g, look.size, frame=frame, supersample=look.supersample) for g in grids]


def turntable(grid: np.ndarray, frames: int = 36, size: int | None = None, style: str = "draft") -> list[np.ndarray]:
    """`frames` images of one shape with the camera turning once around it, at one scale."""
    look = _style(style, size)
    azimuths = [AZIMUTH + 360.0 * k / frames for k in range(frames)]
    frame = set_frame(grid, look.fill, azimuths)
    return [render_voxels(grid, look.size, azimuth=a, frame=frame, supersample=look.supersample) for a in azimuths]


@functools.lru_cache(maxsize=8)
def _font(pixels: int) -> ImageFont.FreeTypeFont:
    import matplotlib  # ships DejaVu Sans, an anti-aliased font every install has

    return ImageFont.truetype(str(pathlib.Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), pixels)


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def montage(grids, ncols: int, labels=None, size: int | None = None, style: str = "draft") -> np.ndarray:
    """Render grids into one RGB image, `ncols` per row, in one frame, with optional labels under each."""
    grids = list(grids)
    if not grids:
        raise ValueError("montage: no grids to draw")
    if labels is not None and len(labels) != len(grids):
        raise ValueError(f"montage: {len(labels)} labels for {len(grids)} grids")
    images = render_set(grids, size, style)
    cell = images[0].shape[0]
    ncols = max(1, min(ncols, len(grids)))
    nrows = -(-len(grids) // ncols)
    font = _font(max(10, cell // 14))
    label_h = font.size + 4 if labels is not None else 0
    sheet = Image.new("RGB", (ncols * cell, nrows * (cell + label_h)), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for k, image in enumerate(images):
        r, c = divmod(k, ncols)
        sheet.paste(Image.fromarray(image), (c * cell, r * (cell + label_h)))
        if labels is not None:
            text = _fit(str(labels[k]), font, cell - 6)
            draw.text((c * cell + cell / 2, r * (cell + label_h) + cell + 1), text, fill=(40, 40, 40), font=font,
                      anchor="mt")
    return np.asarray(sheet)


def save_png(path: str | pathlib.Path, image: np.ndarray) -> pathlib.Path:
    """Write an RGB uint8 image as PNG (atomically, creating the parent directory)."""
    with files.atomic_open(path) as f:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(f, format="PNG")
    return pathlib.Path(path)


def save_gif(path: str | pathlib.Path, images, fps: float = 5.0) -> pathlib.Path:
    """Write RGB uint8 frames as a looping GIF (e.g. an interpolation from t=0 to t=1)."""
    frames = [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
    if not frames:
        raise ValueError("save_gif: no frames")
    with files.atomic_open(path) as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return pathlib.Path(path)
