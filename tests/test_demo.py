"""`python -m experiments.demo` (bin/train): training, then Algorithm 1 with its gallery, and where it all is."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_demo_trains_draws_and_says_where_everything_is(tmp_path):
    cmd = [sys.executable, "-m", "experiments.demo", "--config=configs/default.py:smoke",
           "--interpolate_config=configs/interpolate.py:smoke", f"--workdir={tmp_path / 'demo'}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    gallery = tmp_path / "demo" / "interpolate" / "index.html"
    assert gallery.is_file() and (tmp_path / "demo" / "interpolate" / "figure6.png").is_file()
    assert (tmp_path / "demo" / "train" / "threshold.json").is_file()
    listed = out.stdout[out.stdout.index("outputs:"):]
    assert str(gallery) in listed and str(tmp_path / "demo" / "train") in listed
    assert "reconstructs poorly" in out.stderr  # six steps of a tiny model: the run is flagged, not drawn silently
