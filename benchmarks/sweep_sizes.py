"""Time all-pairs interpolation against input size, for every implementation and dtype (the study's
Tables 2-3 and Figure 5, extended).

    python -m benchmarks.sweep_sizes --config=configs/sweep.py --workdir=runs/sweep_sizes

For each (dtype, N, implementation) cell of `lerpnet.ops.lerp.interpolate`: compile time on its
own, warm-up, then median/min/max of repeated timings (small outputs inside one jitted loop), bytes
written and bandwidth as a fraction of a copy ceiling measured in the same run. Cells that cannot
run are recorded as skipped with the reason. Then the study's other rows on a freshly initialised
autoencoder: encoding N shapes, decoding all N*N*steps interpolants in chunks, and the whole
program. Writes <workdir>/<device>/sweep.{csv,json,md,png}.
"""

from __future__ import annotations

import functools
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from benchmarks.latents import output_bytes, random_latents
from benchmarks.timing import copy_bandwidth, time_in_jit_loop
from lerpnet import files, models
from lerpnet.device import device_info, device_slug
from lerpnet.ops.lerp import interpolate
from lerpnet.ops.lerp.api import PALLAS_KERNELS
from lerpnet.plots import plot_seconds_vs_n
from lerpnet.tables import write_table
from lerpnet.timing import time_calls

# The study's published figures quoted in this project (its per-size Table 3 values are not, so
# only these are drawn): GPU interpolation of 50 shapes, and Table 2's kernels.
STUDY = {"gpu_interpolation_n50_s": 0.09, "table2_shared_memory_s": 0.17, "table2_global_memory_s": 0.24}


def device_memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def interpreted(implementation: str) -> bool:
    """Off the GPU the Pallas kernels only interpret (slow): small N only, never in a jitted loop."""
    return implementation in PALLAS_KERNELS and jax.default_backend() != "gpu"


def skip_reason(cfg, implementation: str, n: int, nbytes: int, memory: int, started: float) -> str:
    """Why a cell is not run, or '' when it is."""
    if time.perf_counter() - started > cfg.time_budget_s:
        return f"time budget of {cfg.time_budget_s:.0f} s spent"
    if nbytes > cfg.max_output_fraction * memory:
        return f"output {nbytes / 1e9:.1f} GB exceeds {cfg.max_output_fraction:.0%} of device memory"
    if implementation == "numpy" and nbytes > cfg.numpy_max_bytes:
        return f"NumPy output {nbytes / 1e9:.1f} GB > numpy_max_bytes (seconds per call)"
    if interpreted(implementation) and n > cfg.interpret_max_n:
        return f"off the GPU Pallas only interprets; N > interpret_max_n = {cfg.interpret_max_n}"
    return ""


def time_cell(cfg, implementation: str, z, nbytes: int) -> dict:
    """Compile time, then timings of one interpolation cell."""
    if implementation == "numpy":
        host = np.asarray(z)
        t = time_calls(lambda: interpolate(host, cfg.steps, "numpy"), warmup=1, repeats=cfg.numpy_repeats)
        return dict(compile_s=0.0, method="blocked calls", **t.as_dict())
    fn = functools.partial(interpolate, steps=cfg.steps, implementation=implementation)
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(z).compile()
    compile_s = time.perf_counter() - start
    if nbytes <= cfg.loop_max_bytes and not interpreted(implementation):
        t = time_in_jit_loop(fn, z, inner=cfg.loop_inner, warmup=cfg.warmup, repeats=cfg.repeats)
        method = f"jit loop x{cfg.loop_inner}"
    else:
        t = time_calls(compiled, z, warmup=cfg.warmup, repeats=cfg.repeats)
        method = "blocked calls"
    return dict(compile_s=compile_s, method=method, **t.as_dict())


def sweep_interpolation(cfg, copy_bw: float) -> list[dict]:
    memory, started = device_memory_bytes(), time.perf_counter()
    cells = [(d, n, m) for d in cfg.dtypes for n in cfg.sizes for m in cfg.implementations]
    rows = []
    for dtype, n, implementation in tqdm(cells, desc="interpolation cells", unit="cell"):
        nbytes = output_bytes(n, cfg.steps, dtype)
        row = dict(kind="interpolate", implementation=implementation, dtype=dtype, n=n, steps=cfg.steps, bytes=nbytes)
        reason = skip_reason(cfg, implementation, n, nbytes, memory, started)
        if not reason:
            try:
                row.update(time_cell(cfg, implementation, random_latents(n, dtype, cfg.seed + n), nbytes))
            except Exception as e:  # out of memory, a kernel the platform lacks: record it, go on
                reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if reason:
            rows.append({**row, "status": "skipped", "reason": reason})
            tqdm.write(f"skip {dtype} N={n} {implementation}: {reason}")
            continue
        bw = nbytes / row["median_s"]
        rows.append({**row, "status": "ok", "GBps": bw / 1e9, "of_copy_bw": bw / copy_bw})
    return rows


def sweep_model(cfg) -> list[dict]:
    """Encode N random shapes, decode all N*N*steps interpolants in chunks, and both with the
    interpolation between (the study's CNN and total rows), on a freshly initialised model."""
    model = models.Autoencoder(models.model_config(dtype=cfg.model_dtype, **cfg.model))
    params = model.init(jax.random.key(cfg.seed), jnp.zeros((1, 32, 32, 32), jnp.float32))
    encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))
    decode = jax.jit(lambda p, z: model.apply(p, z, method=models.Autoencoder.decode) > 0)

    def decode_all(z):
        latents = interpolate(z, cfg.steps).reshape(-1, *z.shape[1:])
        total = latents.shape[0]
        chunk = min(cfg.decode_chunk, total)  # the last chunk is padded: one compiled shape per N
        padded = jnp.pad(latents, ((0, -total % chunk),) + ((0, 0),) * 4)
        return [decode(params, padded[k:k + chunk]) for k in range(0, padded.shape[0], chunk)]

    def program(voxels):
        return decode_all(encode(params, voxels))

    rows = []
    for n in tqdm(cfg.model_sizes, desc="model rows", unit="size"):
        voxels = jax.random.bernoulli(jax.random.key(n), 0.2, (n, 32, 32, 32)).astype(jnp.float32)
        z = encode(params, voxels)
        for part, fn, arg in (("encode", functools.partial(encode, params), voxels),
                              ("decode_all_interpolants", decode_all, z), ("whole_program", program, voxels)):
            t = time_calls(fn, arg, warmup=1, repeats=max(cfg.repeats // 3, 2))
            rows.append(dict(kind="model", part=part, dtype=cfg.model_dtype, n=n, steps=cfg.steps,
                             interpolants=n * n * cfg.steps, status="ok", method="blocked calls", **t.as_dict()))
    return rows


def plot(rows: list[dict], copy_bw: float, path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_bw) = plt.subplots(1, 2, figsize=(13, 5))
    ok = [r for r in rows if r["kind"] == "interpolate" and r["status"] == "ok"]
    colors = dict(zip(sorted({r["implementation"] for r in ok}), plt.cm.tab10.colors))
    for (implementation, dtype) in sorted({(r["implementation"], r["dtype"]) for r in ok}):
        sel = sorted((r for r in ok if r["implementation"] == implementation and r["dtype"] == dtype),
                     key=lambda r: r["n"])
        style = dict(color=colors[implementation], ls="-" if dtype == "float32" else "--", marker="o", ms=3)
        label = f"{implementation} {dtype}"
        ax_t.plot([r["n"] for r in sel], [r["median_s"] for r in sel], label=label, **style)
        ax_bw.plot([r["n"] for r in sel], [r["GBps"] for r in sel], label=label, **style)
    ax_t.plot([50], [STUDY["gpu_interpolation_n50_s"]], "k*", ms=14, label="study GPU, N=50 (0.09 s)")
    ax_t.set(xscale="log", yscale="log", xlabel="N latents", ylabel="seconds per all-pairs call (median)",
             title="time vs N (the study's N = 50 figure starred)")
    ax_bw.axhline(copy_bw / 1e9, color="k", lw=1, ls=":", label="copy ceiling (read+write), same run")
    ax_bw.set(xscale="log", xlabel="N latents", ylabel="output GB/s", title="achieved write bandwidth")
    for ax in (ax_t, ax_bw):
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_bw.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with files.atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def main(argv):
    del argv
    cfg = flags.FLAGS.config
    out = pathlib.Path(flags.FLAGS.workdir) / device_slug()
    copy_bw = copy_bandwidth(cfg.copy_bytes)
    print(f"copy ceiling {copy_bw / 1e9:.0f} GB/s on {jax.devices()[0].device_kind}", flush=True)
    rows = sweep_interpolation(cfg, copy_bw) + sweep_model(cfg)
    meta = {**device_info(), "copy_GBps": copy_bw / 1e9, "study": STUDY, "config": cfg.to_dict(),
            "timing": "median/min/max of repeated calls after warm-up, blocked with block_until_ready; "
                      "outputs <= loop_max_bytes timed per iteration inside one jitted loop; compile_s apart"}
    write_table(out / "sweep", rows, meta)
    plot(rows, copy_bw, out / "sweep.png", f"all-pairs interpolation, steps={cfg.steps}, {meta['device']}, "
                                           f"jax {meta['jax']}")
    plot_seconds_vs_n(out / "seconds_vs_n.png", seconds_vs_n(rows),
                      f"kernel only vs the whole program, steps={cfg.steps}, {meta['device']}")
    print(f"wrote {out}/sweep.{{csv,json,md,png}} and {out}/seconds_vs_n.png")


def seconds_vs_n(rows: list[dict]) -> dict[str, list[tuple[int, float, str]]]:
    """The two panels of seconds_vs_n.png: the fastest interpolation implementation at each N, and
    the whole program (encode N shapes, interpolate, decode every interpolant) at each N."""
    fastest: dict[int, dict] = {}
    for r in rows:
        if r["kind"] == "interpolate" and r["status"] == "ok" and (r["n"] not in fastest
                                                                     or r["median_s"] < fastest[r["n"]]["median_s"]):
            fastest[r["n"]] = r
    kernel = [(n, r["median_s"], f"{r['implementation']} {r['dtype']}") for n, r in sorted(fastest.items())]
    program = [(r["n"], r["median_s"], "whole program") for r in rows
               if r["kind"] == "model" and r["part"] == "whole_program"]
    return {"kernel only (all-pairs interpolation)": kernel, "whole program (encode, interpolate, decode)": program}


def run():
    """The command line: its flags are defined only here, when this is the program run (so that the
    benchmarks, each with its own --config and --workdir, can be imported together)."""
    config_flags.DEFINE_config_file("config", "configs/sweep.py", "sweep configuration")
    flags.DEFINE_string("workdir", None, "outputs go to <workdir>/<device>/")
    flags.mark_flags_as_required(["workdir"])
    app.run(main)


if __name__ == "__main__":
    run()
