"""The sweep's smoke variant runs end to end (on the CPU in CI, or on a GPU) and writes what the README reads."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

from benchmarks import sweep_sizes
from lerpnet.device import device_slug

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_sweep_smoke_writes_tables_and_figure(tmp_path):
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep_sizes", "--config=configs/sweep.py:smoke",
                           f"--workdir={tmp_path}"], cwd=ROOT, check=True, timeout=300, capture_output=True, text=True)
    out = tmp_path / device_slug()
    assert f"wrote {out}/sweep." in done.stdout
    result = json.loads((out / "sweep.json").read_text())
    rows, meta = result["rows"], result["meta"]
    assert meta["device"] and meta["jax"] and meta["copy_GBps"] > 0 and meta["config"]["steps"] == 11
    timed = {(r["implementation"], r["dtype"], r["n"]) for r in rows if r["kind"] == "interpolate" and r["status"] == "ok"}
    for dtype in ("float32", "bfloat16"):
        assert {("xla", dtype, n) for n in (2, 10, 20)} <= timed
        assert {("numpy", dtype, n) for n in (2, 10, 20)} <= timed
        assert ("mosaic_smem", dtype, 10) in timed
    skipped = [r for r in rows if r["status"] == "skipped"]
    # off a GPU the Mosaic kernel runs in interpret mode, too slow past N = 10; on a GPU it is compiled
    expected = {("mosaic_smem", 20)} if sweep_sizes.interpreted("mosaic_smem") else set()
    assert {(r["implementation"], r["n"]) for r in skipped} == expected
    assert all("interpret" in r["reason"] for r in skipped)
    for r in rows:
        if r["status"] == "ok" and r["kind"] == "interpolate":
            assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
            assert r["bytes"] == r["n"] ** 2 * 11 * 64 * (4 if r["dtype"] == "float32" else 2)
            assert r["GBps"] > 0 and r["compile_s"] >= 0
    assert {r["part"] for r in rows if r["kind"] == "model"} == {"encode", "decode_all_interpolants", "whole_program"}
    assert (out / "sweep.csv").stat().st_size > 0 and (out / "sweep.md").read_text().count("|") > 10
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "seconds_vs_n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seconds_vs_n_takes_the_fastest_kernel_and_the_whole_program():
    from benchmarks.sweep_sizes import seconds_vs_n

    rows = [dict(kind="interpolate", status="ok", n=10, median_s=2.0, implementation="xla", dtype="float32"),
            dict(kind="interpolate", status="ok", n=10, median_s=1.0, implementation="triton", dtype="float32"),
            dict(kind="interpolate", status="skipped", n=20, median_s=0.1, implementation="xla", dtype="float32"),
            dict(kind="model", part="encode", n=10, median_s=0.5),
            dict(kind="model", part="whole_program", n=10, median_s=3.0)]
    kernel, program = seconds_vs_n(rows).values()
    assert kernel == [(10, 1.0, "triton float32")] and program == [(10, 3.0, "whole program")]


def test_sweep_needs_a_workdir():
    done = subprocess.run([sys.executable, "-m", "benchmarks.sweep_sizes", "--config=configs/sweep.py:smoke"],
                          cwd=ROOT, timeout=120, capture_output=True, text=True)
    assert done.returncode != 0 and "workdir" in done.stderr
