"""Time all-pairs interpolation against input size, for every backend and dtype (study Tables 2-3, Fig. 5).

    python -m experiments.sweep_sizes --config=configs/sweep.py --workdir=results/sweep_sizes

For each (dtype, N, backend) cell: compile time on its own, warm-up, then median/min/max of repeated
timings (small outputs inside one jitted loop), bytes written and bandwidth as a fraction of a copy
ceiling measured in the same run. Cells that cannot run are recorded as skipped with the reason.
Then the study's other rows on a freshly initialised autoencoder: encoding N shapes, decoding all
N*N*steps interpolants in chunks, and the whole program. Writes <workdir>/<device>/sweep.{csv,json,md,png}.
"""

from __future__ import annotations

import functools
import os
import pathlib
import re
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from lerpnet import timing
from lerpnet.ops.lerp.api import PALLAS_BACKENDS, interpolate

CONFIG = config_flags.DEFINE_config_file("config", "configs/sweep.py", "sweep configuration")
WORKDIR = flags.DEFINE_string("workdir", "results/sweep_sizes", "outputs go to <workdir>/<device>/")

# The study's published figures that the issues state (its per-size Table 3 values are not given
# there, so only these are drawn): GPU interpolation of 50 shapes, and Table 2's kernels.
STUDY = {"gpu_interpolation_n50_s": 0.09, "table2_shared_memory_s": 0.17, "table2_global_memory_s": 0.24}


def device_slug() -> str:
    """'nvidia_h100_80gb_hbm3', 'cpu': the results subdirectory for this device."""
    kind = jax.devices()[0].device_kind if jax.default_backend() != "cpu" else "cpu"
    return re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")


def device_memory_bytes() -> int:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def output_bytes(n: int, steps: int, dtype: str) -> int:
    return n * n * steps * 64 * np.dtype(jnp.dtype(dtype)).itemsize


def skip_reason(cfg, backend: str, n: int, nbytes: int, memory: int, started: float) -> str:
    """Why a cell is not run, or '' when it is."""
    if time.perf_counter() - started > cfg.time_budget_s:
        return f"time budget of {cfg.time_budget_s:.0f} s spent"
    if nbytes > cfg.max_output_fraction * memory:
        return f"output {nbytes / 1e9:.1f} GB exceeds {cfg.max_output_fraction:.0%} of device memory"
    if backend == "numpy" and nbytes > cfg.numpy_max_bytes:
        return f"NumPy output {nbytes / 1e9:.1f} GB > numpy_max_bytes (seconds per call)"
    if backend in PALLAS_BACKENDS and jax.default_backend() != "gpu" and n > cfg.interpret_max_n:
        return f"off the GPU Pallas only interprets; N > interpret_max_n = {cfg.interpret_max_n}"
    return ""


def time_cell(cfg, backend: str, z, nbytes: int) -> dict:
    """Compile time, then timings of one interpolation cell."""
    if backend == "numpy":
        host = np.asarray(z)
        t = timing.time_calls(lambda: interpolate(host, cfg.steps, "numpy"), warmup=1, repeats=cfg.numpy_repeats)
        return dict(compile_s=0.0, method="blocked calls", **t.as_dict())
    fn = functools.partial(interpolate, steps=cfg.steps, backend=backend)
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(z).compile()
    compile_s = time.perf_counter() - start
    interpreted = backend in PALLAS_BACKENDS and jax.default_backend() != "gpu"
    if nbytes <= cfg.loop_max_bytes and not interpreted:
        t = timing.time_in_jit_loop(fn, z, inner=cfg.loop_inner, warmup=cfg.warmup, repeats=cfg.repeats)
        method = f"jit loop x{cfg.loop_inner}"
    else:
        t = timing.time_calls(compiled, z, warmup=cfg.warmup, repeats=cfg.repeats)
        method = "blocked calls"
    return dict(compile_s=compile_s, method=method, **t.as_dict())


def sweep_interpolation(cfg, copy_bw: float) -> list[dict]:
    memory, started = device_memory_bytes(), time.perf_counter()
    cells = [(d, n, b) for d in cfg.dtypes for n in cfg.sizes for b in cfg.backends]
    rows = []
    for dtype, n, backend in tqdm(cells, desc="interpolation cells", unit="cell"):
        nbytes = output_bytes(n, cfg.steps, dtype)
        row = dict(kind="interpolate", backend=backend, dtype=dtype, n=n, steps=cfg.steps, bytes=nbytes)
        reason = skip_reason(cfg, backend, n, nbytes, memory, started)
        if not reason:
            z = (jax.random.normal(jax.random.key(cfg.seed + n), (n, 64), jnp.float32) + 0.5).astype(dtype)
            try:
                row.update(time_cell(cfg, backend, z, nbytes))
            except Exception as e:  # out of memory, a backend the platform lacks: record it, go on
                reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        if reason:
            rows.append({**row, "status": "skipped", "reason": reason})
            tqdm.write(f"skip {dtype} N={n} {backend}: {reason}")
            continue
        bw = nbytes / row["median_s"]
        rows.append({**row, "status": "ok", "GBps": bw / 1e9, "of_copy_bw": bw / copy_bw})
    return rows


def sweep_model(cfg) -> list[dict]:
    """Encode N random shapes, decode all N*N*steps interpolants in chunks, and both with the
    interpolation between (the study's CNN and total rows), on a freshly initialised model."""
    from lerpnet import models  # the model helper's module; only this part of the sweep needs it

    model = models.Autoencoder(models.model_config(dtype=cfg.model_dtype, **cfg.model))
    params = model.init(jax.random.key(cfg.seed), jnp.zeros((1, 32, 32, 32), jnp.float32))
    encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))
    decode = jax.jit(lambda p, z: model.apply(p, z, method=models.Autoencoder.decode) > 0)

    def decode_all(z):
        latents = interpolate(z, cfg.steps, "auto").reshape(-1, *z.shape[1:])
        total = latents.shape[0]
        chunk = min(cfg.decode_chunk, total)  # the last chunk is padded: one compiled shape per N
        padded = jnp.pad(latents, ((0, -total % chunk),) + ((0, 0),) * 4)
        chunks = [decode(params, padded[k:k + chunk]) for k in range(0, padded.shape[0], chunk)]
        return chunks

    def program(voxels):
        return decode_all(encode(params, voxels))

    rows = []
    for n in tqdm(cfg.model_sizes, desc="model rows", unit="size"):
        voxels = jax.random.bernoulli(jax.random.key(n), 0.2, (n, 32, 32, 32)).astype(jnp.float32)
        z = encode(params, voxels)
        for part, fn, arg in (("encode", functools.partial(encode, params), voxels),
                              ("decode_all_interpolants", decode_all, z), ("whole_program", program, voxels)):
            t = timing.time_calls(fn, arg, warmup=1, repeats=max(cfg.repeats // 3, 2))
            rows.append(dict(kind="model", backend=part, dtype=cfg.model_dtype, n=n, steps=cfg.steps,
                             interpolants=n * n * cfg.steps, status="ok", method="blocked calls", **t.as_dict()))
    return rows


def plot(rows: list[dict], copy_bw: float, path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_bw) = plt.subplots(1, 2, figsize=(13, 5))
    ok = [r for r in rows if r["kind"] == "interpolate" and r["status"] == "ok"]
    colors = dict(zip(sorted({r["backend"] for r in ok}), plt.cm.tab10.colors))
    for (backend, dtype) in sorted({(r["backend"], r["dtype"]) for r in ok}):
        sel = sorted((r for r in ok if r["backend"] == backend and r["dtype"] == dtype), key=lambda r: r["n"])
        style = dict(color=colors[backend], ls="-" if dtype == "float32" else "--", marker="o", ms=3)
        label = f"{backend} {dtype}"
        ax_t.plot([r["n"] for r in sel], [r["median_s"] for r in sel], label=label, **style)
        ax_bw.plot([r["n"] for r in sel], [r["GBps"] for r in sel], label=label, **style)
    ax_t.plot([50], [STUDY["gpu_interpolation_n50_s"]], "k*", ms=14, label="study GPU, N=50 (0.09 s)")
    ax_t.set(xscale="log", yscale="log", xlabel="N latents", ylabel="seconds per all-pairs call (median)",
             title="time vs N (study's Table 3 per-size values not published in the issues)")
    ax_bw.axhline(copy_bw / 1e9, color="k", lw=1, ls=":", label="copy ceiling (read+write), same run")
    ax_bw.set(xscale="log", xlabel="N latents", ylabel="output GB/s", title="achieved write bandwidth")
    for ax in (ax_t, ax_bw):
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_bw.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv):
    del argv
    cfg = CONFIG.value
    out = pathlib.Path(WORKDIR.value) / device_slug()
    copy_bw = timing.copy_bandwidth(cfg.copy_bytes)
    print(f"copy ceiling {copy_bw / 1e9:.0f} GB/s on {jax.devices()[0].device_kind}", flush=True)
    rows = sweep_interpolation(cfg, copy_bw)
    try:
        rows += sweep_model(cfg)
    except ImportError as e:
        rows.append(dict(kind="model", backend="all", status="skipped", reason=f"lerpnet.models unavailable: {e}"))
    meta = {**timing.device_info(), "copy_GBps": copy_bw / 1e9, "study": STUDY, "config": cfg.to_dict(),
            "timing": "median/min/max of repeated calls after warm-up, blocked with block_until_ready; "
                      "outputs <= loop_max_bytes timed per iteration inside one jitted loop; compile_s apart"}
    timing.write_table(out / "sweep", rows, meta)
    info = meta
    plot(rows, copy_bw, out / "sweep.png", f"all-pairs interpolation, steps={cfg.steps}, {info['device']}, "
                                             f"jax {info['jax']}")
    print(f"wrote {out}/sweep.{{csv,json,md,png}}")


def run():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
