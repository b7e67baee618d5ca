"""The NumPy renderer: framing, depth order, z-up, speed, and the PNG/GIF writers."""

import time

import numpy as np
import pytest
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


def _width(image: np.ndarray) -> int:
    cols = np.flatnonzero(_drawn(image).any(0))
    return int(cols[-1] - cols[0] + 1) if cols.size else 0


def _extent(image: np.ndarray) -> int:
    """Drawn width or height, whichever is larger."""
    return max(_width(image), _width(image.swapaxes(0, 1)))


def test_publication_style_fills_larger_cells_and_draws_smooth_labels():
    chair = procedural_chairs(1, seed=0)[0]
    draft = render.montage([chair], 1, ["t=0.5"], style="draft")
    publication = render.montage([chair], 1, ["t=0.5"], style="publication")
    cell = render.STYLES["publication"].size
    assert publication.shape[1] == cell > draft.shape[1] == render.STYLES["draft"].size
    assert _extent(publication[:cell]) / cell > 0.9 > 0.75 > _extent(draft[:160]) / 160  # the chair fills the frame
    label = publication[cell:]
    greys = np.unique(label[_drawn(label)].mean(-1).round())
    assert greys.size > 8, "labels are not anti-aliased"
    with pytest.raises(ValueError, match="style"):
        render.montage([chair], 1, style="poster")


def test_size_overrides_the_style_and_a_set_shares_one_scale():
    small = np.zeros((32,) * 3, bool)
    small[14:18, 14:18, 0:4] = True
    big = np.zeros((32,) * 3, bool)
    big[4:28, 4:28, 0:24] = True
    alone, = render.render_set([small], size=96, style="publication")
    together = render.render_set([small, big], size=96, style="publication")
    assert alone.shape == (96, 96, 3)
    assert _extent(alone) > 85 and _extent(together[0]) < _extent(together[1]) / 3
    # The draft style frames the whole grid: a shape looks the same in any set.
    np.testing.assert_array_equal(render.render_set([small], 96)[0], render.render_set([small, big], 96)[0])


def test_turntable_turns_the_camera_about_the_vertical():
    chair = procedural_chairs(1, seed=2)[0]
    frames = render.turntable(chair, frames=4, size=96)
    assert len(frames) == 4 and all(f.shape == (96, 96, 3) for f in frames)
    # The camera a quarter turn on sees what the first camera sees of the chair turned back a quarter.
    turned_back = render.turntable(np.rot90(chair, -1, axes=(0, 1)), frames=4, size=96)[0]
    turned_on = render.turntable(np.rot90(chair, 1, axes=(0, 1)), frames=4, size=96)[0]
    differ = lambda a, b: (a != b).any(-1).mean()  # noqa: E731
    assert differ(frames[1], turned_back) < 0.04 < 0.1 < differ(frames[1], turned_on)  # up to rounding at edges
    assert differ(frames[0], frames[1]) > 0.1
