"""Tests for the shared helpers: bit packing, IoU metrics and the timing utilities."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import bitpack, metrics, timing


def _random_grids(rng, shape, p=0.2):
    return rng.random(shape) < p


def test_pack_roundtrip_and_layout():
    rng = np.random.default_rng()
    v = _random_grids(rng, (3, 32, 32, 32))
    packed = bitpack.pack_voxels(v)
    assert packed.dtype == jnp.uint32 and packed.shape == (3, 32, 32)
    np.testing.assert_array_equal(bitpack.unpack_voxels(packed), v)
    # Bit k of word [x, y] is voxel [x, y, k].
    x, y, k = 5, 17, 31
    one = np.zeros((32, 32, 32), bool)
    one[x, y, k] = True
    p = np.asarray(bitpack.pack_voxels(one))
    assert p[x, y] == np.uint32(1 << k) and p.sum(dtype=np.uint64) == (1 << k)


def test_pack_rejects_other_resolutions():
    with pytest.raises(ValueError, match="32"):
        bitpack.pack_voxels(np.zeros((16, 16, 16), bool))


def test_iou_matches_numpy_and_packed():
    rng = np.random.default_rng()
    a, b = _random_grids(rng, (4, 32, 32, 32)), _random_grids(rng, (4, 32, 32, 32))
    want = (a & b).sum(axis=(1, 2, 3)) / (a | b).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.iou(a, b), want, rtol=1e-6)
    np.testing.assert_allclose(
        metrics.packed_iou(bitpack.pack_voxels(a), bitpack.pack_voxels(b)), want, rtol=1e-6
    )
    np.testing.assert_allclose(metrics.occupancy(a), a.mean(axis=(1, 2, 3)), rtol=1e-6)


def test_iou_edge_cases():
    empty = np.zeros((32, 32, 32), bool)
    full = np.ones((32, 32, 32), bool)
    assert float(metrics.iou(empty, empty)) == 1.0
    assert float(metrics.iou(full, empty)) == 0.0
    assert float(metrics.packed_iou(bitpack.pack_voxels(full), bitpack.pack_voxels(full))) == 1.0


def test_time_in_jit_loop_does_the_work_every_iteration():
    # A loop whose body XLA hoisted or trimmed would report far less than a real call takes.
    x = jax.random.normal(jax.random.key(1), (384, 384))
    work = jax.jit(lambda a: jnp.tanh(a @ a) @ a)
    per_call = timing.time_calls(work, x, warmup=2, repeats=5).median
    in_loop = timing.time_in_jit_loop(work, x, inner=10, warmup=1, repeats=3).median
    assert in_loop > 0.25 * per_call


def test_write_table(tmp_path):
    rows = [{"n": 2, "ms": 0.123456}, {"n": 4, "ms": 1.5, "note": "x"}]
    meta = timing.device_info()
    timing.write_table(tmp_path / "t", rows, meta)
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["rows"] == rows and data["meta"]["jax"] == jax.__version__
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "n,ms,note"
    md = (tmp_path / "t.md").read_text()
    assert "| n | ms | note |" in md and "0.1235" in md


def test_copy_bandwidth_positive():
    assert timing.copy_bandwidth(1 << 20, repeats=3) > 0
