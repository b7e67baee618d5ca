"""Seconds per call of device work, for the figures a program reports about itself.

Device work is asynchronous, so every call is blocked until its result is ready; warm-up calls
(compilation, first transfers) are not counted. benchmarks/timing.py adds what only the benchmarks
need (jitted-loop timing of small problems, hardware ceilings).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax


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


class Laps:
    """Where a program's wall time goes: `lap(step)` records the seconds since the previous lap (or
    since construction), so the steps' seconds add up to the whole."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = now - self._last
        self._last = now


def process_seconds() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included), from Linux's
    /proc; None where that is not available. A program logs it to show what its own laps leave out."""
    try:
        with open("/proc/self/stat") as stat:  # field 22, starttime, in clock ticks after boot
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
