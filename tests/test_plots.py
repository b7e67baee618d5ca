"""Training curves, and seconds against N: one panel per thing timed, one line per variant, bad rows refused."""

import warnings

import numpy as np
import pytest
from PIL import Image

from lerpnet.plots import plot_curves, plot_seconds_vs_n


def test_kernel_and_program_panels_side_by_side(tmp_path):
    kernel = [(n, 1e-5 * n * n, "mosaic_smem") for n in (50, 200, 1000)] + [(50, 2e-3, "xla"), (200, 3e-2, "xla")]
    program = [(1000, 75.4, "whole program"), (50, 0.4, "whole program"), (200, 4.1, "whole program")]
    path = plot_seconds_vs_n(tmp_path / "sub" / "timing.png", {"kernel only": kernel, "Algorithm 1": program},
                             title="all pairs")
    image = np.asarray(Image.open(path).convert("L"))
    height, width = image.shape
    assert width > 1.8 * height  # two panels side by side
    left, right = image[:, : width // 2], image[:, width // 2 :]
    assert (left < 200).mean() > 0.01 and (right < 200).mean() > 0.01  # both panels drawn


def test_bad_rows_are_refused_before_drawing(tmp_path):
    with pytest.raises(ValueError, match="panel 'kernel'"):
        plot_seconds_vs_n(tmp_path / "t.png", {"kernel": [(50, 0.0, "xla")]})
    with pytest.raises(ValueError, match="every panel needs rows"):
        plot_seconds_vs_n(tmp_path / "t.png", {"kernel": []})
    assert not (tmp_path / "t.png").exists()


def test_training_curves_are_three_panels_before_and_after_the_first_evaluation(tmp_path):
    train = [{"step": s, "split": "train", "loss": 1.0 / (s + 1)} for s in range(5)]
    val = [{"step": 4, "split": "val", "loss": 0.5, "iou@0.3": "nan", "iou@0.5": 0.3, "pred_occupancy": 0.1,
            "target_occupancy": 0.2}]  # a NaN is stored as the string "nan"
    for records in (train, train + val):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no empty legends before the first evaluation
            path = plot_curves(records, tmp_path / "curves.png")
        image = np.asarray(Image.open(path).convert("L"))
        assert image.shape[1] > 3 * image.shape[0] and (image < 200).mean() > 0.01  # loss, IoU, occupancy
        assert list(tmp_path.iterdir()) == [path]  # written whole: no temporary left
