"""Benchmark the all-pairs interpolation kernels: variants and block sizes against jnp and a copy.

    python -m experiments.bench_interpolation --out=results/interpolation

On the GPU: measures the copy-bandwidth ceiling, checks every variant against the jnp reference on
the device, times each at large N (median of repeated blocked calls) and every backend at small N
inside one jitted loop, next to the launch floor (a minimal Mosaic GPU kernel in the same loop).
Writes `<out>/kernels.{json,csv,md}` through lerpnet.timing.write_table. Expected runtime on an
H100: about 2 minutes.
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.experimental import pallas as pl
from jax.experimental.pallas import mosaic_gpu as plgpu

from lerpnet import timing
from lerpnet.ops.lerp.api import interpolate, jnp_all_pairs
from lerpnet.ops.lerp import mosaic_global as lerp_global, mosaic_smem as lerp_smem, triton as lerp_triton
from lerpnet.ops.common import mosaic_interpret

FLAGS = flags.DEFINE_string("out", "results/interpolation", "directory for kernels.{json,csv,md}")
LARGE = flags.DEFINE_list("large", ["2048"], "sizes N timed call by call, every variant")
SMALL = flags.DEFINE_list("small", ["2", "10", "50", "64"], "sizes N timed inside one jitted loop")
INNER = flags.DEFINE_integer("inner", 200, "iterations of the jitted loop for small N")
STEPS = 11

# name -> (kernel module, static parameters); "pallas"/"pallas_global"/"pallas_triton" are the module
# defaults that the API runs.
VARIANTS = {
    "jnp": (None, {}),
    "pallas": (lerp_smem, {}),
    "smem_8x8": (lerp_smem, dict(block_i=8, block_j=8)),
    "smem_16x16": (lerp_smem, dict(block_i=16, block_j=16)),
    "smem_4x32": (lerp_smem, dict(block_i=4, block_j=32)),
    "smem_8x16_3buf": (lerp_smem, dict(buffers=3)),
    "smem_16x8_3buf": (lerp_smem, dict(block_i=16, block_j=8, buffers=3)),
    "pallas_global": (lerp_global, {}),
    "global_8x32": (lerp_global, dict(block_j=32)),
    "global_16x16": (lerp_global, dict(block_i=16)),
    "pallas_triton": (lerp_triton, {}),
    "triton_4x32": (lerp_triton, dict(block_i=4, block_j=32)),
    "triton_16x16_w8": (lerp_triton, dict(block_i=16, block_j=16, num_warps=8)),
}


def variant(name: str):
    """all_pairs(z) of a named variant (interpreted off the GPU, so the script can be tried on a CPU)."""
    module, params = VARIANTS[name]
    if module is None:
        return functools.partial(jnp_all_pairs, steps=STEPS)
    return functools.partial(module.all_pairs, steps=STEPS, interpret=jax.default_backend() != "gpu", **params)


def output_bytes(n: int, steps: int, dtype) -> int:
    """Bytes an all-pairs call must write (reading the N latents is negligible beside it)."""
    return n * n * steps * 64 * jnp.dtype(dtype).itemsize


def random_latents(n: int, dtype, seed: int = 0) -> jax.Array:
    """Non-zero random latents (timing on zeros can flatter a kernel)."""
    return (jax.random.normal(jax.random.key(seed), (n, 64), jnp.float32) + 0.5).astype(dtype)


@jax.jit
def within_rounding(out: jax.Array, z: jax.Array) -> jax.Array:
    """True when every element of an all-pairs output is within rounding of the float32 reference."""
    ref = jnp_all_pairs(z.astype(jnp.float32), STEPS)  # unrounded: both sides of a bf16 tie are right
    zf = jnp.abs(z.astype(jnp.float32))
    scale = zf[:, None, None, :] + zf[None, :, None, :]
    bound = 1e-6 * scale + (2.0**-8 * jnp.abs(ref) if z.dtype == jnp.bfloat16 else 0.0)
    return jnp.all(jnp.abs(out.astype(jnp.float32) - ref) <= bound)


def launch_floor(n: int, dtype) -> timing.Timing:
    """Seconds per iteration of a minimal Mosaic GPU kernel (one program copying one 16x64 block)
    in the same jitted-loop harness: the least any kernel launch costs there."""

    @functools.partial(plgpu.kernel, out_type=jax.ShapeDtypeStruct((16, 64), dtype),
                       scratch_types=dict(buf=plgpu.SMEM((16, 64), dtype), bar=plgpu.Barrier(num_arrivals=1)),
                       interpret=mosaic_interpret(jax.default_backend() != "gpu"))
    def copy_block(z_gmem, out_gmem, buf, bar):
        plgpu.copy_gmem_to_smem(z_gmem.at[pl.ds(0, 16)], buf, bar)
        plgpu.barrier_wait(bar)
        plgpu.copy_smem_to_gmem(buf, out_gmem)
        plgpu.wait_smem_to_gmem(0)

    return timing.time_in_jit_loop(copy_block, random_latents(max(n, 16), dtype), inner=INNER.value)


def bench_large(n: int, dtype, copy_bw: float) -> list[dict]:
    rows = []
    z = random_latents(n, dtype)
    nbytes = output_bytes(n, STEPS, dtype)
    for name in VARIANTS:
        row = dict(n=n, dtype=jnp.dtype(dtype).name, variant=name, method="blocked calls")
        try:
            compiled = jax.jit(variant(name)).lower(z).compile()
            out = compiled(z)
            row["correct"] = bool(within_rounding(out, z))
            del out
            t = timing.time_calls(compiled, z, warmup=2, repeats=15)
        except Exception as e:  # a variant the device rejects is recorded, not fatal
            rows.append({**row, "skipped": f"{type(e).__name__}: {str(e)[:160]}"})
            continue
        bw = nbytes / t.median
        rows.append({**row, "median_ms": 1e3 * t.median, "min_ms": 1e3 * t.min, "max_ms": 1e3 * t.max,
                     "write_GBps": bw / 1e9, "of_copy_bw": bw / copy_bw})
        print(f"N={n} {row['dtype']:8s} {name:18s} {1e3 * t.median:8.3f} ms  {bw / 1e9:7.0f} GB/s  "
              f"{bw / copy_bw:5.2f} of copy  correct={row['correct']}", flush=True)
    return rows


def bench_small(n: int, dtype) -> list[dict]:
    z = random_latents(n, dtype)
    floor = launch_floor(n, dtype)
    rows = [dict(n=n, dtype=jnp.dtype(dtype).name, variant="launch_floor", method="jit loop",
                 median_ms=1e3 * floor.median, min_ms=1e3 * floor.min, max_ms=1e3 * floor.max)]
    for backend in ("jnp", "pallas", "pallas_global", "pallas_triton"):
        row = dict(n=n, dtype=rows[0]["dtype"], variant=backend, method="jit loop")
        try:
            out = interpolate(z, STEPS, backend)
            row["correct"] = bool(within_rounding(out, z))
            t = timing.time_in_jit_loop(functools.partial(interpolate, steps=STEPS, backend=backend), z, inner=INNER.value)
        except Exception as e:
            rows.append({**row, "skipped": f"{type(e).__name__}: {str(e)[:160]}"})
            continue
        rows.append({**row, "median_ms": 1e3 * t.median, "min_ms": 1e3 * t.min, "max_ms": 1e3 * t.max,
                     "of_launch_floor": t.median / floor.median})
        print(f"N={n} {row['dtype']:8s} {backend:14s} {1e6 * t.median:8.2f} us in loop "
              f"({t.median / floor.median:4.2f}x floor {1e6 * floor.median:.2f} us) correct={row['correct']}",
              flush=True)
    return rows


def main(argv):
    del argv
    copy_bw = timing.copy_bandwidth(1 << 30)
    print(f"copy bandwidth {copy_bw / 1e9:.0f} GB/s (read + write)", flush=True)
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        for n in map(int, SMALL.value):
            rows += bench_small(n, dtype)
        for n in map(int, LARGE.value):
            rows += bench_large(n, dtype, copy_bw)
    meta = {**timing.device_info(), "steps": STEPS, "inner": INNER.value, "copy_GBps": copy_bw / 1e9,
            "method": "large N: median of 15 blocked calls after 2 warm-up; small N: median of 10 runs "
                      "of a jitted loop of `inner` iterations, per iteration",
            "bytes": "output bytes N*N*steps*64*itemsize; of_copy_bw = write bandwidth / copy bandwidth"}
    timing.write_table(pathlib.Path(FLAGS.value) / "kernels", rows, meta)


if __name__ == "__main__":
    app.run(main)
