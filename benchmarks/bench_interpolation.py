"""Benchmark the all-pairs interpolation kernels: launch shapes against XLA and the copy ceiling.

    python -m benchmarks.bench_interpolation --workdir=runs/bench_interpolation

Measures the copy-bandwidth ceiling, checks every kernel launch against the XLA implementation on
the device, times each at large N (median of repeated blocked calls), and times the public
`lerpnet.ops.lerp.interpolate` of every implementation at small N inside one jitted loop, next to
the launch floor: the fastest kernel on a single latent in the same loop. Writes
`<workdir>/<device>/kernels.{json,csv,md}`. Expected on an H100: about 2 minutes. Off the GPU the
kernels interpret (minutes even at small N; for trying the script).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
from absl import app, flags
from tqdm import tqdm

from benchmarks.latents import output_bytes, random_latents
from benchmarks.timing import copy_bandwidth, time_in_jit_loop
from lerpnet.device import device_info, device_slug
from lerpnet.ops.common import interpret_off_gpu
from lerpnet.ops.lerp import IMPLEMENTATIONS, interpolate, mosaic_global, mosaic_smem, triton, xla
from lerpnet.ops.lerp.api import PALLAS_KERNELS
from lerpnet.tables import write_table
from lerpnet.timing import Timing, time_calls

STEPS = 11

# (implementation, launch) timed at large N: each kernel's default launch first, then other blocks.
LAUNCHES = (
    ("xla", None),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch()),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=8, block_j=8)),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=8, block_j=16)),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=16, block_j=16)),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=8, block_j=16, buffers=3)),
    ("mosaic_smem", mosaic_smem.MosaicSmemLaunch(block_i=16, block_j=8, buffers=3)),
    ("mosaic_global", mosaic_global.MosaicGlobalLaunch()),
    ("mosaic_global", mosaic_global.MosaicGlobalLaunch(block_i=8, block_j=32)),
    ("mosaic_global", mosaic_global.MosaicGlobalLaunch(block_i=16, block_j=16)),
    ("triton", triton.TritonLaunch()),
    ("triton", triton.TritonLaunch(block_i=4, block_j=32)),
    ("triton", triton.TritonLaunch(block_i=16, block_j=16, num_warps=8)),
)


def describe(launch) -> str:
    """'block_i=4 block_j=32 ...' for a launch dataclass; '' for XLA, which has none."""
    return "" if launch is None else " ".join(f"{k}={v}" for k, v in dataclasses.asdict(launch).items())


def kernel(implementation: str, launch):
    """all_pairs(z) of one kernel module with one launch (interpreted off the GPU)."""
    if launch is None:
        return functools.partial(xla.all_pairs, steps=STEPS)
    module = IMPLEMENTATIONS[implementation]
    return functools.partial(module.all_pairs, steps=STEPS, launch=launch, interpret=interpret_off_gpu())


@jax.jit
def within_rounding(out: jax.Array, z: jax.Array) -> jax.Array:
    """True when every element of an all-pairs output is within rounding of the float32 reference."""
    ref = xla.all_pairs(z.astype(jnp.float32), steps=STEPS)  # unrounded: both sides of a bf16 tie are right
    zf = jnp.abs(z.astype(jnp.float32))
    scale = zf[:, None, None, :] + zf[None, :, None, :]
    bound = 1e-6 * scale + (2.0**-8 * jnp.abs(ref) if z.dtype == jnp.bfloat16 else 0.0)
    return jnp.all(jnp.abs(out.astype(jnp.float32) - ref) <= bound)


def launch_floor(dtype, inner: int) -> tuple[str, Timing]:
    """The fastest Pallas kernel on a single latent, per iteration of the jitted loop: the least a
    kernel launch costs there."""
    z = random_latents(1, dtype)
    timed = {name: time_in_jit_loop(functools.partial(interpolate, steps=STEPS, implementation=name), z,
                                    inner=inner) for name in PALLAS_KERNELS}
    name = min(timed, key=lambda k: timed[k].median)
    return name, timed[name]


def bench_large(n: int, dtype, copy_bw: float) -> list[dict]:
    rows = []
    z = random_latents(n, dtype)
    nbytes = output_bytes(n, STEPS, dtype)
    for implementation, launch in tqdm(LAUNCHES, desc=f"N={n} {jnp.dtype(dtype).name}", unit="launch"):
        row = dict(n=n, dtype=jnp.dtype(dtype).name, implementation=implementation, launch=describe(launch),
                   method="blocked calls")
        try:
            compiled = jax.jit(kernel(implementation, launch)).lower(z).compile()
            out = compiled(z)
            row["correct"] = bool(within_rounding(out, z))
            del out
            t = time_calls(compiled, z, warmup=2, repeats=15)
        except Exception as e:  # a launch the device rejects is recorded, not fatal
            rows.append({**row, "skipped": f"{type(e).__name__}: {str(e)[:160]}"})
            continue
        bw = nbytes / t.median
        rows.append({**row, "median_ms": 1e3 * t.median, "min_ms": 1e3 * t.min, "max_ms": 1e3 * t.max,
                     "write_GBps": bw / 1e9, "of_copy_bw": bw / copy_bw})
    return rows


def bench_small(n: int, dtype, inner: int, floor_kernel: str, floor: Timing) -> list[dict]:
    z = random_latents(n, dtype)
    name = jnp.dtype(dtype).name
    rows = [dict(n=n, dtype=name, implementation=f"launch floor ({floor_kernel}, N = 1)", method="jit loop",
                 median_ms=1e3 * floor.median, min_ms=1e3 * floor.min, max_ms=1e3 * floor.max)]
    for implementation in (m for m in IMPLEMENTATIONS if m != "numpy"):
        row = dict(n=n, dtype=name, implementation=implementation, launch="default", method="jit loop")
        fn = functools.partial(interpolate, steps=STEPS, implementation=implementation)
        try:
            row["correct"] = bool(within_rounding(fn(z), z))
            t = time_in_jit_loop(fn, z, inner=inner)
        except Exception as e:
            rows.append({**row, "skipped": f"{type(e).__name__}: {str(e)[:160]}"})
            continue
        rows.append({**row, "median_ms": 1e3 * t.median, "min_ms": 1e3 * t.min, "max_ms": 1e3 * t.max,
                     "of_launch_floor": t.median / floor.median})
    return rows


def define_flags() -> None:
    """The command line's flags, defined only when this is the program run (so that the benchmarks,
    each with its own --workdir, can be imported together)."""
    flags.DEFINE_string("workdir", None, "outputs go to <workdir>/<device>/kernels.{json,csv,md}")
    flags.DEFINE_list("large", ["2048"], "sizes N timed call by call, every launch")
    flags.DEFINE_list("small", ["2", "10", "50", "64"], "sizes N timed inside one jitted loop")
    flags.DEFINE_integer("inner", 200, "iterations of the jitted loop for small N")
    flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    out = pathlib.Path(FLAGS.workdir) / device_slug() / "kernels"
    copy_bw = copy_bandwidth(1 << 30)
    print(f"copy bandwidth {copy_bw / 1e9:.0f} GB/s (read + write)", flush=True)
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        floor_kernel, floor = launch_floor(dtype, FLAGS.inner)
        for n in tqdm([int(n) for n in FLAGS.small], desc=f"small N {jnp.dtype(dtype).name}", unit="size"):
            rows += bench_small(n, dtype, FLAGS.inner, floor_kernel, floor)
        for n in map(int, FLAGS.large):
            rows += bench_large(n, dtype, copy_bw)
    meta = {**device_info(), "steps": STEPS, "inner": FLAGS.inner, "copy_GBps": copy_bw / 1e9,
            "method": "large N: median of 15 blocked calls after 2 warm-up; small N: median of 10 runs "
                      "of a jitted loop of `inner` iterations, per iteration",
            "bytes": "output bytes N*N*steps*64*itemsize; of_copy_bw = write bandwidth / copy bandwidth"}
    print(f"wrote {write_table(out, rows, meta)} (also .json, .csv)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
