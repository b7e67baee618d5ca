"""The cross-domain report on the ShapeNetVox32 sample chairs under a smoke model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import cross_domain
from lerpnet import train
from lerpnet.configs import default as default_config


def test_turn_is_a_quarter_turn_about_z():
    grid = np.zeros((1, 32, 32, 32), bool)
    grid[0, 30, 15, 5] = True  # far along +x (y just below the centre 15.5), low
    turned = cross_domain.turn(grid, 90)
    assert turned[0, 16, 30, 5] and turned.sum() == 1  # now far along +y (x just above the centre), same height
    np.testing.assert_array_equal(cross_domain.turn(cross_domain.turn(grid, 180), 180), grid)


def test_shape_stats_measure_occupancy_and_extent():
    grid = np.zeros((2, 32, 32, 32), bool)
    grid[0, 4:28, 10:20, 0:30] = True
    stats = cross_domain.shape_stats(grid)
    assert [int(stats[f"extent_{a}"][0]) for a in "xyz"] == [24, 10, 30]
    assert [int(stats[f"extent_{a}"][1]) for a in "xyz"] == [0, 0, 0]
    assert stats["occupancy"][0] == pytest.approx(24 * 10 * 30 / 32**3)


def test_report_on_the_shapenet_sample(tmp_path, shared_data, monkeypatch):
    sample = shared_data / "shapenetvox32_sample" / "ShapeNetVox32"
    if not sample.is_dir():
        pytest.skip(f"no ShapeNetVox32 sample at {sample}")
    monkeypatch.setenv("HOME", str(tmp_path))  # the dataset cache goes to ~/.cache
    run = tmp_path / "run"
    train.train_and_evaluate(default_config.get_config("smoke"), str(run))
    meta = cross_domain.report(run, sample, tmp_path / "out")
    table = json.loads((tmp_path / "out" / "cross_domain.json").read_text())
    rows = table["rows"]
    assert len(rows) == 6 == meta["chairs"]
    assert meta["set_azimuth"] in cross_domain.AZIMUTHS
    for row in rows:
        ious = [row[f"iou@{d}deg"] for d in cross_domain.AZIMUTHS]
        assert all(0.0 <= v <= 1.0 for v in ious)
        assert row["best_iou"] == max(ious) and row["best_azimuth"] == cross_domain.AZIMUTHS[ious.index(max(ious))]
        assert 0.01 < row["occupancy"] < 0.5 and max(row["extent_x"], row["extent_y"], row["extent_z"]) > 20
    assert meta["mean_iou_at_each_chair_s_best"] >= meta["mean_iou_at_set_azimuth"] >= meta["mean_iou_at_0deg"]
    assert "own_validation_iou" in meta  # the smoke run's procedural chairs are readable anywhere
    assert (tmp_path / "out" / "cross_domain.png").stat().st_size > 0
    assert "| id |" in (tmp_path / "out" / "cross_domain.md").read_text()


def test_a_missing_run_is_one_line(tmp_path, monkeypatch):
    out = subprocess.run([sys.executable, "-m", "benchmarks.cross_domain", f"--run={tmp_path / 'none'}",
                          f"--workdir={tmp_path / 'out'}", f"--data={tmp_path}"],
                         cwd=cross_domain.__file__.rsplit("/benchmarks/", 1)[0], capture_output=True, text=True,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
