"""Timing and hardware-ceiling helpers shared by every benchmark in lerpnet.

Device work is asynchronous, so every measurement blocks on its result. Small problems are timed
inside one jitted loop, so that launch and host overhead are not what gets measured. Ceilings (copy
bandwidth) are measured in the same run as the figures they are compared with.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import pathlib
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per call over repeated timed runs taken after warm-up."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict[str, float]:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max, "repeats": len(self.samples)}


def time_calls(fn: Callable[..., Any], *args: Any, warmup: int = 3, repeats: int = 20) -> Timing:
    """Times `fn(*args)` call by call, each call blocked until its result is ready."""
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        samples.append(time.perf_counter() - start)
    return Timing(tuple(samples))


def time_in_jit_loop(
    fn: Callable[..., Any], *args: Any, inner: int = 100, warmup: int = 2, repeats: int = 10
) -> Timing:
    """Seconds per call of `fn(*args)` run `inner` times inside one jitted `fori_loop`.

    Each iteration's floating-point inputs are made to depend on the previous iteration's output
    (adding zero times one of its elements), so XLA cannot hoist the work out of the loop; the whole
    output is kept alive through an optimization barrier, so XLA cannot shrink the work to the part
    that is read.
    """

    def run(*operands):
        def body(_, carry):
            inputs, acc = carry
            out = jax.lax.optimization_barrier(fn(*inputs))
            first = jnp.ravel(jax.tree_util.tree_leaves(out)[0])[0].astype(jnp.float32)
            chained = jax.tree_util.tree_map(
                lambda a: a + (first * 0).astype(a.dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                inputs,
            )
            return chained, acc + first

        return jax.lax.fori_loop(0, inner, body, (operands, jnp.float32(0)))[1]

    loop = jax.jit(run)
    timing = time_calls(loop, *args, warmup=warmup, repeats=repeats)
    return Timing(tuple(s / inner for s in timing.samples))


def copy_bandwidth(nbytes: int = 1 << 30, repeats: int = 20) -> float:
    """Measured device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    n = max(nbytes // 4, 1)
    x = jax.random.uniform(jax.random.key(0), (n,), jnp.float32)
    double = jax.jit(lambda a: a * 2.0)
    timing = time_calls(double, x, warmup=3, repeats=repeats)
    return 2 * 4 * n / timing.median


def device_info() -> dict[str, Any]:
    """What a result was measured on: device, software versions and date."""
    devices = jax.devices()
    return {
        "device": devices[0].device_kind,
        "platform": devices[0].platform,
        "device_count": len(devices),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def write_table(path_stem: str | pathlib.Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Writes rows as `<stem>.json` (with meta), `<stem>.csv` and a Markdown table `<stem>.md`."""
    stem = pathlib.Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": list(rows)}, indent=2, default=str))
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"- {key}: {_fmt(value)}" for key, value in meta.items()]
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
