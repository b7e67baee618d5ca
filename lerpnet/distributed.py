"""Several processes, one run: JAX's distributed runtime set up from the environment.

One process per host (or per GPU) runs the same program. `initialize_from_env` connects them before
any JAX work; with one process it does nothing, so every program calls it unconditionally.

    LERPNET_COORDINATOR=host:port   process 0's address, where its coordinator listens
    LERPNET_NUM_PROCESSES=P         how many processes take part (1: none, whatever else is set)
    LERPNET_PROCESS_ID=k            this process, 0 .. P - 1

Without these, a cluster launcher JAX knows (Slurm or Open MPI with more than one task, or
JAX_COORDINATOR_ADDRESS set) is left to `jax.distributed.initialize`'s own detection.
JAX_LOCAL_DEVICE_IDS (read by JAX) gives a process a subset of its host's GPUs, e.g. one each.
The helpers below are what the programs synchronise with; each is a no-op for one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np
from jax.experimental import multihost_utils

VARIABLES = ("LERPNET_COORDINATOR", "LERPNET_NUM_PROCESSES", "LERPNET_PROCESS_ID")
# A process that is done waits this long at exit for the others (process 0 writes the reports last).
SHUTDOWN_TIMEOUT_SECONDS = 6 * 3600


def initialize_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """Join the other processes of this run (see the module docstring); returns the process count.

    Must run before anything starts a JAX backend. A bad or partial LERPNET_* setting is a one-line
    ValueError naming the variable, before any connection is tried.
    """
    if jax.distributed.is_initialized():
        return jax.process_count()
    given = {name: environ.get(name, "") for name in VARIABLES}
    if given["LERPNET_NUM_PROCESSES"].strip() == "1":
        return 1
    if any(given.values()):
        _join(**_explicit(given))
    elif _launched_by_a_cluster(environ):
        _join()
    else:
        return 1
    return jax.process_count()


def _explicit(given: dict[str, str]) -> dict:
    """jax.distributed.initialize's arguments from the LERPNET_* variables, each checked."""
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ValueError(f"{', '.join(missing)} must be set too: a run of several processes needs all of "
                         f"{', '.join(VARIABLES)}")
    numbers = {}
    for name in VARIABLES[1:]:
        try:
            numbers[name] = int(given[name])
        except ValueError:
            raise ValueError(f"{name}={given[name]!r} is not a whole number") from None
    count, index = numbers.values()
    if count < 1:
        raise ValueError(f"LERPNET_NUM_PROCESSES={count} must be at least 1")
    if not 0 <= index < count:
        raise ValueError(f"LERPNET_PROCESS_ID={index} must be in 0..{count - 1} (LERPNET_NUM_PROCESSES={count})")
    host, _, port = given["LERPNET_COORDINATOR"].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"LERPNET_COORDINATOR={given['LERPNET_COORDINATOR']!r} must be host:port, e.g. 10.0.0.1:1234")
    return {"coordinator_address": given["LERPNET_COORDINATOR"], "num_processes": count, "process_id": index}


def _launched_by_a_cluster(environ: Mapping[str, str]) -> bool:
    def more_than_one(name: str) -> bool:
        return environ.get(name, "").isdigit() and int(environ[name]) > 1

    return bool(environ.get("JAX_COORDINATOR_ADDRESS")) or (
        "SLURM_JOB_ID" in environ and more_than_one("SLURM_NTASKS")) or more_than_one("OMPI_COMM_WORLD_SIZE")


def _join(**where) -> None:
    # CPU processes need a collectives library to talk to each other; GPUs use NCCL regardless.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**where, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_SECONDS)


def is_primary() -> bool:
    """Whether this process writes what is written once (reports, logs): process 0."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process gets here (the same `name` everywhere)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def total(count: int) -> int:
    """The sum of `count` (below 2^31) over the processes."""
    if jax.process_count() == 1:
        return int(count)
    return int(np.sum(np.asarray(multihost_utils.process_allgather(np.int32(count)), np.int64)))


def check_same(value: str | int, what: str) -> None:
    """A ValueError on every process unless all of them have the same `value` (a hash, a size)."""
    if jax.process_count() == 1:
        return
    data = np.frombuffer(str(value).encode().ljust(128)[:128], np.uint8)
    seen = np.asarray(multihost_utils.process_allgather(data)).reshape(jax.process_count(), -1)
    if not (seen == seen[:1]).all():
        values = [bytes(row).decode().strip() for row in seen]
        raise ValueError(f"the {len(values)} processes disagree on {what}: {values} (by process index); every "
                         "process must see the same files and settings")
