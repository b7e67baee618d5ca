"""Algorithm 1 on several devices and several processes gives the one-device scores, and survives a kill.

The program runs as `python -m experiments.interpolate` subprocesses, each forcing 8 CPU devices
(see tests/processes.py): on 1 of them (the reference), on all 8, and as two real processes on
localhost joined by jax.distributed using 2 devices each, one of them SIGKILLed mid-run, then both
rerun. Every score of every ordered pair must equal the one-device run's. Each device decodes 2 pairs
a step in every run, as the automatic block size (sized per device from the memory budget) keeps it.
"""

import json

import numpy as np
import pytest

from tests import processes
from tests.allpairs.test_program import trained_run  # noqa: F401  (the smoke run all these tests share)

# 12 shapes, every ordered pair (66 unique paths + 12 constant ones), thresholded at 0.5, where the
# smoke model's probabilities lie: the grids are half full and any difference in a logit shows.
SETTINGS = {"num_shapes": 12, "pairs": "all", "threshold": 0.5}
PER_DEVICE = 2  # pairs a device decodes a step


FORCED = 8  # CPU devices each process has


def flags(run, workdir, devices: int) -> list[str]:
    """The program's command line for a run on `devices` devices of each process."""
    return ["experiments.interpolate", "--config=configs/interpolate.py:smoke", f"--workdir={workdir}",
            f"--config.checkpoint_dir={run}", f"--config.num_devices={devices}",
            f"--config.block_pairs={PER_DEVICE * devices}", *(f"--config.{k}={v}" for k, v in SETTINGS.items())]


@pytest.fixture(scope="module")
def one_device(trained_run, tmp_path_factory):  # noqa: F811
    """The scores of the one-device run (a subprocess like the others)."""
    workdir = tmp_path_factory.mktemp("one_device")
    processes.finish(processes.start(flags(trained_run, workdir, 1), 1, FORCED, workdir / "logs"), workdir / "logs")
    return np.load(workdir / "pairs.npz")


def assert_same_scores(workdir, reference) -> None:
    got = np.load(workdir / "pairs.npz")
    assert sorted(got) == sorted(reference)
    occupancy = reference["occupancy"]
    assert 0.05 < occupancy.mean() < 0.95 and occupancy.std() > 0  # grids that can differ
    for name in reference:
        np.testing.assert_array_equal(got[name], reference[name], err_msg=name)


def test_eight_forced_devices_score_like_one(trained_run, one_device, tmp_path):  # noqa: F811
    workdir = tmp_path / "interp"
    processes.finish(processes.start(flags(trained_run, workdir, 8), 1, FORCED, tmp_path / "logs"), tmp_path / "logs")
    summary = json.loads((workdir / "summary.json").read_text())
    assert (summary["num_devices"], summary["num_processes"], summary["num_pairs"]) == (8, 1, 144)
    assert_same_scores(workdir, one_device)


def test_two_processes_share_the_blocks_survive_a_kill_and_resume(trained_run, one_device, tmp_path):  # noqa: F811
    workdir, logs = tmp_path / "interp", tmp_path / "logs"
    blocks = workdir / "blocks"
    total = -(-66 // 4) + 12 // 4  # blocks of 4 pairs (2 devices): the unique paths, then the constant ones
    # Both processes start; once the first block is written, process 1 is killed, then process 0.
    running = processes.start(flags(trained_run, workdir, 2), 2, FORCED, logs)
    processes.wait_for(lambda: any(blocks.glob("block_*.npz")), running, logs, what="a finished block")
    processes.kill(running[1:])
    processes.kill(running[:1])
    kept = len(list(blocks.glob("block_*.npz")))
    assert 0 < kept < total and not (workdir / "summary.json").exists()
    # Rerun both: the missing blocks are shared out again; process 0 alone writes the results.
    processes.finish(processes.start(flags(trained_run, workdir, 2), 2, FORCED, logs), logs)
    summary = json.loads((workdir / "summary.json").read_text())
    assert (summary["num_devices"], summary["num_processes"]) == (4, 2)
    assert summary["num_blocks"] == total and summary["blocks_computed_now"] == total - kept
    assert len(list(blocks.glob("block_*.npz"))) == total
    assert_same_scores(workdir, one_device)
    # Only process 0 reported.
    assert "outputs:" in (logs / "process_0.log").read_text()
    assert "outputs:" not in (logs / "process_1.log").read_text()
