"""Tests for the shared helpers: bit packing, IoU metrics, tables and device records."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import bitpack, metrics
from lerpnet.device import device_info, device_slug
from lerpnet.tables import write_table


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


def test_write_table(tmp_path):
    rows = [{"n": 2, "ms": 0.123456}, {"n": 4, "ms": 1.5, "note": "x"}]
    meta = device_info()
    assert write_table(tmp_path / "t", rows, meta) == tmp_path / "t.md"
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["rows"] == rows and data["meta"]["jax"] == jax.__version__
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "n,ms,note"
    md = (tmp_path / "t.md").read_text()
    assert "| n | ms | note |" in md and "0.1235" in md
    assert not list(tmp_path.glob(".*.tmp"))  # written through lerpnet.files: no temporaries left


def test_device_slug_is_a_folder_name_of_the_device_kind(monkeypatch):
    assert device_slug() == jax.devices()[0].device_kind.lower().replace(" ", "_")  # "cpu" here

    class H100:
        device_kind = "NVIDIA H100 80GB HBM3"

    monkeypatch.setattr(jax, "devices", lambda: [H100()])
    assert device_slug() == "nvidia_h100_80gb_hbm3"
