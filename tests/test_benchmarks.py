"""A tiny run of the model benchmark on CPU: every part runs and the table holds what it measured."""

import json

import pytest

from lerpnet.configs import bench_model as bench_config
from benchmarks import bench_model


def test_smoke_run_writes_a_table(tmp_path):
    cfg = bench_config.get_config("smoke")
    bench = bench_model.run(cfg, str(tmp_path))
    data = json.loads(open(bench.stem + ".json").read())
    assert data["meta"]["errors"] == {}
    assert data["meta"]["bf16_matmul_flop_s"] > 0 and data["meta"]["copy_bytes_per_s"] > 0
    tasks = {(r["task"], r["framework"], r["variant"], r["dtype"]) for r in data["rows"]}
    assert ("train", "lerpnet", "subpixel", "float32") in tasks
    assert ("decode", "lerpnet", "subpixel", "float32") in tasks
    assert any(t[2].startswith("fused_xla N=3") for t in tasks)
    assert any(t[0] == "up2:forward" for t in tasks)
    for row in data["rows"]:
        assert row["shapes_per_s"] > 0 and row["min_s"] <= row["median_s"] <= row["max_s"]
    assert data["meta"]["fused_bit_mismatch_vs_reference"]["xla"] < 5e-3
    for suffix in (".csv", ".md"):
        assert (bench.stem + suffix) and open(bench.stem + suffix).read().count("\n") > len(data["rows"])


def test_model_flops_count_the_decoder_at_about_50_mflop():
    flops = bench_model.model_flops(bench_model.models.model_config())
    assert flops["decode"] == pytest.approx(51.4e6, rel=0.01)
    assert flops["up1"] == 2 * 64 * 512 * 16 * 32
