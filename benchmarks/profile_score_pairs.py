"""Where one `score_pairs` call spends its time: the device's kernels beside the call's wall time.

    python -m benchmarks.profile_score_pairs --n=50 --decoder_features=64,64 --out=DIR [--block_pairs=P]
        [--trace_dir=DIR]

Times the call (median of --repeats after warm-up), then records one more call with jax.profiler
and sums the device's kernel time by kernel name, and the host's time by traced function. The gap
between the call's wall time and the time some kernel runs is what the host and the launches cost.
Random weights and random shapes (the scores' cost does not depend on them); N shapes, every
ordered pair, 11 steps, 755 reference shapes. Writes <out>/n<N>_<C0>_<C1>[_block<P>].{json,csv,md}
(results/profile/score_pairs/ holds them) and, with --trace_dir, keeps the raw trace there (open its
*.trace.json.gz in Perfetto).
"""

from __future__ import annotations

import collections
import functools
import gzip
import json
import pathlib
import shutil
import tempfile

import jax
from absl import app, flags

from benchmarks.bench_model import random_voxels
from lerpnet import models
from lerpnet.allpairs import score_pairs
from lerpnet.device import device_info
from lerpnet.tables import write_table
from lerpnet.timing import time_calls

_N = flags.DEFINE_integer("n", 50, "shapes N: every ordered pair's path is decoded and scored", lower_bound=2)
_FEATURES = flags.DEFINE_list("decoder_features", ["64", "64"], "the decoder's (C0, C1) channels")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls after two warm-up calls", lower_bound=1)
_OUT = flags.DEFINE_string("out", None, "folder the table goes to", required=True)
_BLOCK_PAIRS = flags.DEFINE_integer("block_pairs", 0, "pairs a block (0: score_pairs sizes it within its memory "
                                    "budget)", lower_bound=0)
_TRACE_DIR = flags.DEFINE_string("trace_dir", "", "folder to keep the raw trace in ('' = not kept)")
_TOP = 25  # rows of each kind in the table


def _intervals_union(spans: list[tuple[float, float]]) -> float:
    """Total length covered by (start, end) spans, overlaps counted once."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def summarize_trace(events: list[dict]) -> tuple[list[dict], dict[str, float]]:
    """Chrome trace events -> rows (where, name, calls, total_ms) and totals.

    Device rows are the complete events of processes whose name starts with "/device:" (kernels and
    memory copies); host rows those of "/host:" processes. `device_busy_ms` counts the time at least
    one device event runs, `device_kernel_ms` their sum.
    """
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    sums: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    device_spans = []
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        process = names.get(e.get("pid"), "")
        where = "device" if process.startswith("/device:") else "host" if process.startswith("/host:") else ""
        if not where:
            continue
        entry = sums[(where, e["name"])]
        entry[0] += 1
        entry[1] += e["dur"] / 1e3
        if where == "device":
            device_spans.append((e["ts"], e["ts"] + e["dur"]))
    rows = [{"where": where, "name": name, "calls": calls, "total_ms": ms}
            for (where, name), (calls, ms) in sums.items()]
    rows.sort(key=lambda r: (r["where"] != "device", -r["total_ms"]))
    totals = {"device_busy_ms": _intervals_union(device_spans) / 1e3,
              "device_kernel_ms": sum(r["total_ms"] for r in rows if r["where"] == "device")}
    return rows, totals


def _load_trace(folder: pathlib.Path) -> list[dict]:
    found = sorted(folder.rglob("*.trace.json.gz"))
    if not found:
        raise FileNotFoundError(f"jax.profiler wrote no *.trace.json.gz under {folder}")
    with gzip.open(found[-1]) as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def main(argv):
    del argv
    n, features = _N.value, tuple(int(c) for c in _FEATURES.value)
    model = models.Autoencoder(models.model_config(decoder_features=features))
    x = random_voxels(jax.random.key(6), n, 0.05)
    params = model.init(jax.random.key(0), x[:1].astype(float))
    reference = random_voxels(jax.random.key(10), 755, 0.05)
    encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))
    z = encode(params, x)
    call = functools.partial(score_pairs, model, params, z, x, reference=reference, pairs="all", steps=11,
                             block_pairs=_BLOCK_PAIRS.value)
    timing = time_calls(lambda: call().scores["smoothness"], warmup=2, repeats=_REPEATS.value)
    stem = pathlib.Path(_OUT.value) / (f"n{n}_{features[0]}_{features[1]}"
                                       + (f"_block{_BLOCK_PAIRS.value}" if _BLOCK_PAIRS.value else ""))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            result = call()
        events = _load_trace(pathlib.Path(tmp))
        if _TRACE_DIR.value:
            shutil.copytree(tmp, _TRACE_DIR.value, dirs_exist_ok=True)
    rows, totals = summarize_trace(events)
    rows = [r for r in rows if r["where"] == "device"][:_TOP] + [r for r in rows if r["where"] == "host"][:_TOP]
    meta = device_info() | {"n": n, "decoder_features": features, "steps": 11, "pairs": "all",
                            "implementation": result.implementation, "block_pairs": result.block_pairs,
                            "num_blocks": result.num_blocks, "call_median_ms": 1e3 * timing.median,
                            "call_samples_ms": [1e3 * s for s in timing.samples],
                            "traced_call_seconds_field_ms": 1e3 * result.seconds} | totals
    print(write_table(stem, rows, meta).read_text())


if __name__ == "__main__":
    app.run(main)
