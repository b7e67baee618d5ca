"""lerpnet.distributed: the process set-up read from the environment, and training over several processes.

The training runs are `python -m experiments.train` subprocesses on CPU: 8 forced devices in one
process, and two real processes on localhost joined by jax.distributed (1 device each), one of them
SIGKILLed after the first checkpoint, then both rerun (2 devices each). Each must end with the
parameters of one device trained on the same global batches (within float rounding: the gradient
is summed over the devices in another order).
"""

import json

import jax
import numpy as np
import pytest

from lerpnet import distributed, train
from lerpnet.configs import default as default_config
from lerpnet.workdir import load_run
from tests import processes

# The smoke run with a global batch that 1, 4 and 8 devices divide, a checkpoint at steps 2 and 4,
# and plain SGD (Adam's first steps are near sign(gradient), which rounding can flip where it is ~0).
OVERRIDES = {"train.batch_size": 8, "train.optimizer": "sgd", "train.num_steps": 4, "train.checkpoint_every": 2,
             "train.eval_every": 4}
FLAGS = ["--config=configs/default.py:smoke", *(f"--config.{k}={v}" for k, v in OVERRIDES.items())]

COMPLETE = {"LERPNET_COORDINATOR": "127.0.0.1:1234", "LERPNET_NUM_PROCESSES": "2", "LERPNET_PROCESS_ID": "1"}


@pytest.mark.parametrize("environ", [
    {},
    {"LERPNET_NUM_PROCESSES": "1"},  # one process: nothing else is needed, nothing is set up
    COMPLETE | {"LERPNET_NUM_PROCESSES": "1", "LERPNET_PROCESS_ID": "7"},
    {"SLURM_JOB_ID": "42", "SLURM_NTASKS": "1"},  # a one-task cluster job
    {"OMPI_COMM_WORLD_SIZE": "1"},
])
def test_one_process_sets_up_nothing(environ):
    assert distributed.initialize_from_env(environ) == 1
    assert not jax.distributed.is_initialized()


@pytest.mark.parametrize("change, message", [
    ({"LERPNET_PROCESS_ID": ""}, r"^LERPNET_PROCESS_ID must be set too: a run of several processes needs all of "
                                 r"LERPNET_COORDINATOR, LERPNET_NUM_PROCESSES, LERPNET_PROCESS_ID$"),
    ({"LERPNET_COORDINATOR": "", "LERPNET_PROCESS_ID": ""}, r"^LERPNET_COORDINATOR, LERPNET_PROCESS_ID must be set"),
    ({"LERPNET_NUM_PROCESSES": "two"}, r"^LERPNET_NUM_PROCESSES='two' is not a whole number$"),
    ({"LERPNET_NUM_PROCESSES": "0"}, r"^LERPNET_NUM_PROCESSES=0 must be at least 1$"),
    ({"LERPNET_PROCESS_ID": "2"}, r"^LERPNET_PROCESS_ID=2 must be in 0\.\.1 \(LERPNET_NUM_PROCESSES=2\)$"),
    ({"LERPNET_PROCESS_ID": "-1"}, r"^LERPNET_PROCESS_ID=-1 must be in 0\.\.1"),
    ({"LERPNET_COORDINATOR": "127.0.0.1"}, r"^LERPNET_COORDINATOR='127\.0\.0\.1' must be host:port"),
    ({"LERPNET_COORDINATOR": ":1234"}, r"must be host:port"),
])
def test_a_bad_setting_is_one_line_naming_the_variable_before_any_connection(change, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize_from_env(COMPLETE | change)
    assert not jax.distributed.is_initialized()


def test_the_helpers_are_no_ops_for_one_process():
    distributed.barrier("anything")
    distributed.check_same("a value of this process", "the value")
    assert distributed.total(5) == 5 and distributed.is_primary()


def smoke_config():
    config = default_config.get_config("smoke")
    for key, value in OVERRIDES.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """One persistent compilation cache for the training subprocesses (a rerun compiles nothing)."""
    folder = tmp_path_factory.mktemp("jax_cache")
    return {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """The workdir of the run on this process's one device, and the parameters it started from."""
    assert jax.device_count() == 1, "the reference run is the one-device run"
    workdir = tmp_path_factory.mktemp("one_device")
    train.train_and_evaluate(smoke_config(), str(workdir))
    return workdir, train.create_state(smoke_config()).params


def records(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def assert_trained_like(workdir, reference) -> None:
    """The parameters and losses of `workdir`'s run are the one-device run's, which moved them."""
    reference_dir, initial = reference
    got, expected = load_run(workdir).params, load_run(reference_dir).params
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(initial)))
    assert moved > 1e-3
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    mine, theirs = records(workdir), records(reference_dir)
    assert [(r["step"], r["split"]) for r in mine] == [(r["step"], r["split"]) for r in theirs]  # each once
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)


def test_eight_forced_devices_train_like_one(one_device, compile_cache, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    processes.finish(processes.start(["experiments.train", *FLAGS, f"--workdir={workdir}"], 1, 8, logs,
                                     **compile_cache), logs)
    assert "8 device(s) in 1 process(es)" in (logs / "process_0.log").read_text()
    assert_trained_like(workdir, one_device)


def test_two_processes_train_like_one_device_through_a_kill_and_a_resume(one_device, compile_cache, tmp_path):
    workdir, logs = tmp_path / "run", tmp_path / "logs"
    command = ["experiments.train", *FLAGS, f"--workdir={workdir}"]
    # Two processes of one device each; once the checkpoint of step 2 is in place, process 1 is
    # killed, then process 0.
    running = processes.start(command, 2, 1, logs, **compile_cache)
    processes.wait_for(lambda: (workdir / "checkpoints" / "2").is_dir(), running, logs, what="checkpoint 2")
    processes.kill(running[1:])
    processes.kill(running[:1])
    assert "2 device(s) in 2 process(es)" in (logs / "process_0.log").read_text()
    assert not (workdir / "checkpoints" / "4").exists()
    # Both rerun, with two devices each: they restore checkpoint 2 together and finish; process 0
    # alone wrote the files.
    processes.finish(processes.start(command, 2, 2, logs, **compile_cache), logs)
    first = (logs / "process_0.log").read_text()
    assert "4 device(s) in 2 process(es)" in first and "resumed from the checkpoint at step 2" in first
    assert "outputs:" in first and "outputs:" not in (logs / "process_1.log").read_text()
    assert sorted(p.name for p in (workdir / "configs").iterdir()) == ["start_0.json", "start_1.json"]
    assert_trained_like(workdir, one_device)
