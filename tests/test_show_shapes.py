"""`python -m experiments.show_shapes`: a montage, or one line naming the bad file."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _show(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "experiments.show_shapes", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_a_procedural_montage_is_written_where_asked(tmp_path):
    out = _show("--source=procedural", "--num=3", f"--out={tmp_path / 'm.png'}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "m.png").stat().st_size > 0 and str(tmp_path / "m.png") in out.stdout


def test_a_bad_file_is_one_line_naming_it(tmp_path):
    folder = tmp_path / "x.binvox"
    folder.mkdir()
    out = _show(f"--files={folder}", f"--out={tmp_path / 'm.png'}")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == f"error: {folder}: is a directory, not a regular file"
    assert "Traceback" not in out.stderr
