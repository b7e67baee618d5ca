"""The benchmarks on the CPU: the model benchmark's smoke run, the timing helpers, the training
results writer and the GPU reproduction script's argument checks."""

import json
import os
import pathlib
import subprocess

import jax
import jax.numpy as jnp
import pytest

from benchmarks import bench_interpolation, bench_model, profile_score_pairs, timing, train_results
from lerpnet.device import device_slug
from lerpnet.timing import time_calls
from lerpnet.configs import bench_model as bench_config

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_smoke_run_writes_a_table(tmp_path):
    cfg = bench_config.get_config("smoke")
    bench = bench_model.run(cfg, tmp_path)
    assert bench.stem == tmp_path / device_slug() / "bench_model"
    data = json.loads(bench.stem.with_suffix(".json").read_text())
    assert data["meta"]["errors"] == {}
    assert data["meta"]["bf16_matmul_flop_s"] > 0 and data["meta"]["copy_bytes_per_s"] > 0
    tasks = {(r["task"], r["framework"], r["variant"], r["dtype"]) for r in data["rows"]}
    assert ("train", "lerpnet", "subpixel", "float32") in tasks
    assert ("decode", "lerpnet", "subpixel", "float32") in tasks
    every_pair = [r for r in data["rows"] if r["variant"].startswith("Algorithm 1 N=3, every ordered pair")]
    assert [r["variant"] for r in every_pair] == ["Algorithm 1 N=3, every ordered pair: lerp_decode xla"]  # auto = xla
    assert any(t[2] == "Algorithm 1 N=3, each distinct shape once: lerp_decode xla" for t in tasks)
    assert any(t[2] == "Algorithm 1 N=3, encode to scores (lerpnet.allpairs.score_pairs): lerp_decode xla" for t in tasks)
    assert any(t[0] == "up2:forward" for t in tasks)
    for row in data["rows"]:
        assert row["shapes_per_s"] > 0 and row["min_s"] <= row["median_s"] <= row["max_s"]
    once = next(r for r in data["rows"] if "each distinct shape once" in r["variant"])
    assert once["decoded_per_call"] == 3 + 3 * 1 and once["shapes_per_call"] == 3 * 3 * 3
    large = next(r for r in data["rows"] if r["variant"].startswith("Algorithm 1 N=5, encode to scores"))
    assert large["decoded_per_call"] == 5 + 10 * 1 and large["shapes_per_call"] == 5 * 5 * 3  # cfg.end_to_end
    assert 0 < large["stream_s"] <= large["median_s"] and large["repeats"] == 1
    assert 0 < large["compile_s"] < large["median_s"]  # the one timed call compiled its programs
    assert data["meta"]["bit_mismatch_vs_reference"]["xla decoder 16,32"] < 5e-3
    for suffix in (".csv", ".md"):
        assert bench.stem.with_suffix(suffix).read_text().count("\n") > len(data["rows"])


def test_launch_sweep_keeps_each_widths_fastest_launch_for_algorithm1(tmp_path):
    cfg = bench_config.get_config("smoke")
    cfg.algorithm1_n = (2,)
    cfg.triton_sweep = (dict(programs=2, rows=4, up1_rows=8, num_warps=4, num_stages=1),
                        dict(programs=3, rows=2, up1_rows=4, num_warps=4, num_stages=1))
    bench = bench_model.Bench(cfg, tmp_path)
    bench.launch_sweep()
    rows = [r for r in bench.rows if r["variant"].startswith("lerp_decode triton N=2")]
    assert [r["decoder"] for r in rows] == ["decoder 16,32"] * 2
    assert all(r["bit_mismatch_vs_xla"] < cfg.max_bit_mismatch and r["useful_tflop_s"] > 0 for r in rows)
    fastest = min(rows, key=lambda r: r["median_s"])
    assert fastest["variant"].endswith(bench_model.describe(bench._launch("triton", "decoder 16,32")))
    assert bench._launch("triton", "decoder 64,64") is None  # not swept: the kernel's default for the widths


def test_unknown_parts_are_refused_before_any_work(tmp_path):
    cfg = bench_config.get_config("smoke")
    cfg.parts = ("ceilings", "fused")
    with pytest.raises(ValueError, match="fused"):
        bench_model.run(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("field, value", [("implementations", ("triton", "cuda")), ("end_to_end_implementation", "cuda")])
def test_unknown_implementations_are_refused_before_any_work(tmp_path, field, value):
    cfg = bench_config.get_config("smoke")
    cfg[field] = value
    with pytest.raises(ValueError, match="unknown implementations \\['cuda'\\]"):
        bench_model.run(cfg, tmp_path)
    assert not list(tmp_path.iterdir())


def test_model_flops_count_the_decoder_at_about_50_mflop():
    flops = bench_model.model_flops(bench_model.models.model_config())
    assert flops["decode"] == pytest.approx(51.4e6, rel=0.01)
    assert flops["up1"] == 2 * 64 * 512 * 16 * 32
    wide = bench_model.model_flops(bench_model.models.model_config(decoder_features=(64, 64)))
    assert wide["up1"] == 2 * 64 * 512 * 64 * 64 and wide["decode"] > 5 * flops["decode"]


def test_kernel_benchmark_checks_and_times_each_launch(monkeypatch):
    from lerpnet.ops.lerp import IMPLEMENTATIONS, triton

    monkeypatch.setattr(bench_interpolation, "LAUNCHES", (("xla", None), ("triton", triton.TritonLaunch(block_j=16))))
    # the Mosaic GPU kernels interpret slowly on a CPU: the Triton kernel stands for them here
    monkeypatch.setattr(bench_interpolation, "IMPLEMENTATIONS", {k: IMPLEMENTATIONS[k] for k in ("triton", "xla", "numpy")})
    rows = bench_interpolation.bench_large(5, jnp.float32, copy_bw=1e9)
    assert [(r["implementation"], r["launch"]) for r in rows] == [
        ("xla", ""), ("triton", "block_i=8 block_j=16 pairs_block=16 num_warps=4")]
    for r in rows:
        assert r["correct"] is True and 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["write_GBps"] > 0
    floor = timing.time_in_jit_loop(lambda z: z * 2, jnp.ones((1, 64)), inner=2, warmup=1, repeats=2)
    small = bench_interpolation.bench_small(3, jnp.bfloat16, 2, "triton", floor)
    assert small[0]["implementation"] == "launch floor (triton, N = 1)"
    assert [r["implementation"] for r in small[1:]] == ["triton", "xla"]  # numpy is not timed in a jitted loop
    assert all(r["correct"] is True and r["of_launch_floor"] > 0 for r in small[1:])


def test_time_in_jit_loop_does_the_work_every_iteration():
    # A loop whose body XLA hoisted or trimmed would report far less than the work takes. The work's own
    # time comes from one call doing it 50 times over, which spreads thin the call's dispatch: on a GPU
    # that outlasts this small work.
    x = jax.random.normal(jax.random.key(1), (384, 384)) / 20

    def work(a):
        return jnp.tanh(a @ a) @ a

    def fifty_times(a):
        for _ in range(50):
            a = work(a)
        return a

    per_work = time_calls(jax.jit(fifty_times), x, warmup=1, repeats=3).median / 50
    in_loop = timing.time_in_jit_loop(jax.jit(work), x, inner=10, warmup=1, repeats=3).median
    assert in_loop > 0.4 * per_work


def test_copy_bandwidth_positive():
    assert timing.copy_bandwidth(1 << 20, repeats=3) > 0


def _fake_run(path: pathlib.Path) -> None:
    path.mkdir()
    config = {"data": {"source": "modelnet", "category": "chair", "rotations": "all", "path": "/data/x/chairs.tar.gz"},
              "model": {"dtype": "float32", "encoder_features": [64, 128], "decoder_features": [64, 64]},
              "train": {"batch_size": 128}}
    (path / "config.json").write_text(json.dumps(config))
    val = {"split": "val", "iou@0.3": 0.6, "iou@0.4": 0.65, "pred_occupancy": 0.04, "target_occupancy": 0.03}
    records = [{"step": 0, "split": "train", "shapes_per_s": 10.0}, {"step": 200, "split": "train", "shapes_per_s": 2000.0},
               {"step": 400, "split": "train", "shapes_per_s": 3000.0}, {**val, "step": 200, "iou@0.5": 0.70},
               {**val, "step": 400, "iou@0.5": 0.69}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "curves.png").write_bytes(b"curves")
    (path / "reconstructions").mkdir()
    for step in (200, 400):
        (path / "reconstructions" / f"step_{step:07d}.png").write_bytes(f"step {step}".encode())


def test_train_results_summarise_a_run(tmp_path):
    _fake_run(tmp_path / "run")
    log = "I0000 train.py] data: 9060 training shapes, 84 validation shapes (modelnet)\nW0000 noise\n"
    summary = train_results.write_results(tmp_path / "run", tmp_path / "out", command="python -m experiments.train",
                                          exit_code=0, wall_s=88.4, log=log)
    out = tmp_path / "out"
    assert json.loads((out / "run.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["final_val"]["step"] == 400 and summary["best_val"]["step"] == 200
    assert summary["train_shapes_per_s_median"] == 2500.0  # the first interval (compilation) left out
    assert summary["data_shapes"] == {"train": 9060, "val": 84}
    assert json.loads((out / "config.json").read_text())["data"]["path"] == "chairs.tar.gz"
    readme = (out / "README.md").read_text()
    assert "python -m experiments.train" in readme and "| 0.690 |" in readme and "9,060 train / 84 val" in readme
    assert "2,500" in readme and "88 s" in readme and "at step 200" in readme
    assert (out / "reconstructions.png").read_bytes() == b"step 400"
    assert (out / "curves.png").read_bytes() == b"curves"
    assert "noise" not in (out / "train.log").read_text()
    assert (summary["threshold"], summary["val_iou_at_threshold"]) == (0.5, None)  # no threshold.json: the default
    assert "threshold.json" not in {p.name for p in out.iterdir()}


def test_train_results_state_the_runs_own_threshold(tmp_path):
    _fake_run(tmp_path / "run")
    stored = {"threshold": 0.45, "val_iou": 0.7012, "step": 400, "best": None}
    (tmp_path / "run" / "threshold.json").write_text(json.dumps(stored))
    summary = train_results.write_results(tmp_path / "run", tmp_path / "out", command="", exit_code=0, wall_s=1.0)
    assert (summary["threshold"], summary["val_iou_at_threshold"]) == (0.45, 0.7012)
    assert json.loads((tmp_path / "out" / "threshold.json").read_text()) == stored
    assert "threshold.json`, what every reader of the run decodes with): 0.45, validation IoU 0.701 there" in (
        tmp_path / "out" / "README.md").read_text()


def test_train_results_refuse_a_run_without_evaluations(tmp_path):
    _fake_run(tmp_path / "run")
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({"step": 0, "split": "train", "shapes_per_s": 1.0}))
    with pytest.raises(ValueError, match="no validation record"):
        train_results.write_results(tmp_path / "run", tmp_path / "out", command="", exit_code=1, wall_s=1.0)


@pytest.mark.parametrize("args, env, message", [
    (["bogus"], {}, "unknown part 'bogus'"),
    (["tests", "train"], {"LERPNET_DATA": ""}, "LERPNET_DATA is not set"),
    (["study"], {"LERPNET_DATA": ""}, "LERPNET_DATA is not set"),  # it trains configs/study.py on the chairs
    (["interpolate"], {"LERPNET_DATA": "/no/such/folder"}, "does not exist"),
    (["train"], {"LERPNET_DATA": __file__}, "is a file not named 3dshapenets_chair_train_vox30.tar.gz"),
    (["interpolate"], {"LERPNET_DATA": str(ROOT), "LERPNET_RUN": "/no/such/run"}, "needs a trained run"),
])
def test_reproduce_gpu_checks_its_arguments_before_any_work(tmp_path, args, env, message):
    out = tmp_path / "out"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "reproduce_gpu.sh"), str(out), *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr
    assert not out.exists()


def test_trace_summary_sums_kernels_by_name_and_counts_overlaps_once():
    meta = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
            {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}}]
    kernels = [("lerp_decode", 0, 1000), ("lerp_decode", 2000, 1000), ("fusion", 2500, 1000)]  # us; overlapping
    events = meta + [{"ph": "X", "pid": 1, "name": n, "ts": t, "dur": d} for n, t, d in kernels]
    events += [{"ph": "X", "pid": 2, "name": "score_pairs", "ts": 0, "dur": 5000},
               {"ph": "X", "pid": 3, "name": "unnamed process", "ts": 0, "dur": 9000},
               {"ph": "i", "pid": 1, "name": "instant", "ts": 0}]
    rows, totals = profile_score_pairs.summarize_trace(events)
    assert rows == [{"where": "device", "name": "lerp_decode", "calls": 2, "total_ms": 2.0},
                    {"where": "device", "name": "fusion", "calls": 1, "total_ms": 1.0},
                    {"where": "host", "name": "score_pairs", "calls": 1, "total_ms": 5.0}]
    assert totals == {"device_busy_ms": 2.5, "device_kernel_ms": 3.0}


def test_kernel_versions_loads_each_version_and_names_a_missing_one(tmp_path):
    from benchmarks.kernel_versions import load_versions
    (tmp_path / "before.py").write_text((ROOT / "lerpnet" / "ops" / "lerp_decode" / "mosaic.py").read_text())
    modules = load_versions(tmp_path, ["before"])
    assert modules["before"].MosaicLaunch().programs == 132 and callable(modules["before"]._lerp_decode)
    with pytest.raises(FileNotFoundError, match=f"no such version file: {tmp_path}/after.py"):
        load_versions(tmp_path, ["before", "after"])
