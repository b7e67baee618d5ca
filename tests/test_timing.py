"""The program's own clocks (lerpnet.timing)."""

import subprocess
import sys
import time

import pytest

from lerpnet.timing import Laps, process_seconds

pytestmark = pytest.mark.skipif(process_seconds() is None, reason="no /proc: process start time unknown")


def test_process_seconds_counts_from_the_start_of_the_process_not_the_import():
    script = "import time; time.sleep(0.6); from lerpnet.timing import process_seconds; print(process_seconds())"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    age = float(out.stdout)
    assert 0.6 <= age <= time.perf_counter() - started + 0.02  # 10 ms clock ticks


def test_laps_add_up_to_the_time_between_them():
    started = time.perf_counter()
    laps = Laps()
    time.sleep(0.05)
    laps.lap("a")
    time.sleep(0.1)
    laps.lap("b")
    elapsed = time.perf_counter() - started
    assert laps.seconds["a"] >= 0.05 and laps.seconds["b"] >= 0.1
    assert laps.seconds["a"] + laps.seconds["b"] <= elapsed
