"""The NumPy renderer: framing, depth order, z-up, speed, and the PNG/GIF writers."""

import time

import numpy as np
from PIL import Image

from lerpnet import render
from lerpnet.data import procedural_chairs


def _drawn(image: np.ndarray) -> np.ndarray:
    return np.any(image != 255, axis=-1)


def test_empty_grid_is_blank_and_shapes_are_framed():
    assert (render.render_voxels(np.zeros((32,) * 3, bool), size=64) == 255).all()
    full = _drawn(render.render_voxels(np.ones((32,) * 3, bool), size=100))
    rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
    assert rows[0] >= 0 and rows[-1] < 100 and rows.size > 85 and cols.size > 70  # fills, not clipped


def test_z_is_up():
    pole = np.zeros((32,) * 3, bool)
    pole[16, 16, :] = True
    drawn = _drawn(render.render_voxels(pole, size=128))
    height, width = np.ptp(np.argwhere(drawn), axis=0)
    assert height > 4 * width


def test_nearest_face_wins():
    """A flat slab seen from above: the top faces (brightest shade) cover its middle."""
    slab = np.zeros((32,) * 3, bool)
    slab[4:28, 4:28, 14:16] = True
    image = render.render_voxels(slab, size=128).astype(int)
    brightness = image.sum(-1)
    top_face = brightness[_drawn(image)].max()
    centre = np.argwhere(_drawn(image)).mean(0).astype(int)
    patch = brightness[centre[0] - 3 : centre[0] + 4, centre[1] - 3 : centre[1] + 4]
    assert np.median(patch) >= 0.9 * top_face


def test_hidden_interior_does_not_change_the_picture():
    solid = np.zeros((32,) * 3, bool)
    solid[8:24, 8:24, 8:24] = True
    shell = solid.copy()
    shell[9:23, 9:23, 9:23] = False
    np.testing.assert_array_equal(render.render_voxels(solid, 96), render.render_voxels(shell, 96))


def test_a_strip_of_eleven_renders_fast():
    chairs = procedural_chairs(11, seed=0)
    start = time.perf_counter()
    strip = render.montage(chairs, ncols=11, size=128)
    assert time.perf_counter() - start < 3.0
    assert strip.shape == (128, 11 * 128, 3) and strip.dtype == np.uint8


def test_montage_layout_labels_and_files(tmp_path):
    grids = procedural_chairs(5, seed=1)
    sheet = render.montage(grids, ncols=3, labels=list("abcde"), size=64)
    assert sheet.shape == (2 * (64 + 14), 3 * 64, 3)
    png = render.save_png(tmp_path / "sub" / "m.png", sheet)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), sheet)
    frames = [render.render_voxels(g, 48) for g in grids]
    gif = render.save_gif(tmp_path / "m.gif", frames, fps=4)
    with Image.open(gif) as im:
        assert im.n_frames == 5 and im.size == (48, 48)
