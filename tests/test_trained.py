"""The notebook API: lerpnet.load gives an object that encodes, decodes and interpolates like the ops."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import lerpnet
from lerpnet.configs import default
from lerpnet.data import save_binvox

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("smoke_run")
    lerpnet.train.train_and_evaluate(default.get_config("smoke"), str(path))
    return path


@pytest.fixture(scope="module")
def model(run_dir):
    with pytest.warns(UserWarning, match="reconstructs poorly"):
        return lerpnet.load(run_dir)


def test_load_reads_the_run_and_its_threshold(run_dir, model):
    assert json.loads(model.config.model.to_json()) == json.loads((run_dir / "config.json").read_text())["model"]
    stored = run_dir / "threshold.json"
    want = json.loads(stored.read_text())["threshold"] if stored.exists() else 0.5
    assert model.threshold == pytest.approx(want)
    assert "TrainedAutoencoder" in repr(model)


def test_a_poor_run_is_loaded_with_a_warning(run_dir):
    stored = json.loads((run_dir / "threshold.json").read_text())
    assert stored["val_iou"] < 0.3  # six steps of a tiny model: specks
    with pytest.warns(UserWarning, match="reconstructs poorly"):
        lerpnet.load(run_dir)


def test_encode_and_decode_batch_and_single_shapes_alike(model):
    chairs = lerpnet.data.procedural_chairs(3, seed=3)
    z = model.encode(chairs)
    assert z.shape == (3, 2, 2, 2, 8) and z.dtype == np.float32
    np.testing.assert_allclose(model.encode(chairs[1]), z[1], rtol=1e-5, atol=1e-5)
    grids = model.decode(z)
    assert grids.shape == (3, 32, 32, 32) and grids.dtype == bool
    np.testing.assert_array_equal(model.decode(z[2]), grids[2])
    np.testing.assert_array_equal(model.reconstruct(chairs), grids)
    logits = model.decode_logits(z)
    np.testing.assert_array_equal(model.decode(z, threshold=0.3), logits > np.log(0.3 / 0.7))


def test_batches_larger_than_one_compile_give_the_same_latents(model):
    chairs = lerpnet.data.procedural_chairs(lerpnet.trained.BATCH + 3, seed=4)
    z = model.encode(chairs)
    np.testing.assert_allclose(z[-3:], model.encode(chairs[-3:]), rtol=1e-5, atol=1e-5)


def test_interpolate_matches_decoding_the_lerped_latents(model):
    a, b = lerpnet.data.procedural_chairs(2, seed=5)
    path = model.interpolate(a, b, steps=5, implementation="reference")
    za, zb = model.encode(a), model.encode(b)
    t = np.linspace(0, 1, 5)[:, None, None, None, None]
    np.testing.assert_array_equal(path, model.decode((1 - t) * za + t * zb))
    assert path.shape == (5, 32, 32, 32)
    np.testing.assert_array_equal(model.interpolate(za, zb, steps=5, implementation="reference"), path)


def test_files_load_in_their_source_orientation(model, tmp_path):
    chair = lerpnet.data.procedural_chairs(1, seed=6)[0]
    save_binvox(tmp_path / "chair.binvox", chair)
    np.testing.assert_array_equal(lerpnet.load_shapes(tmp_path / "chair.binvox"), chair)
    shapenet = tmp_path / "abc123" / "model.binvox"  # ShapeNet files are y-up
    shapenet.parent.mkdir()
    save_binvox(shapenet, lerpnet.data.to_z_up(chair, "y"))  # the 180-degree turn is its own inverse
    grids = lerpnet.load_shapes([tmp_path / "chair.binvox", shapenet])
    assert grids.shape == (2, 32, 32, 32)
    np.testing.assert_array_equal(grids[1], chair)
    np.testing.assert_array_equal(lerpnet.load_shapes(shapenet, up_axis="z"), lerpnet.data.to_z_up(chair, "y"))
    np.testing.assert_allclose(model.encode([tmp_path / "chair.binvox"]), model.encode(chair[None]), atol=1e-5)


def test_bad_input_is_a_clear_error(model):
    with pytest.raises(ValueError, match="shape"):
        model.encode(np.zeros((2, 16, 16, 16)))
    with pytest.raises(ValueError, match="NaN"):
        model.decode(np.full((1, 2, 2, 2, 8), np.nan))
    with pytest.raises(ValueError, match="threshold"):
        model.decode(np.zeros((1, 64)), threshold=1.0)


def test_the_walkthrough_example_runs(run_dir, tmp_path):
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # keep what the env adds
    out = subprocess.run([sys.executable, "examples/walkthrough.py", f"--run={run_dir}", f"--out={tmp_path}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": path})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "reconstruction IoU" in out.stdout
    assert (tmp_path / "path.png").stat().st_size > 0 and (tmp_path / "midpoint.obj").stat().st_size > 0
