"""Running a program as several real processes on localhost (jax.distributed over CPU collectives).

XLA's CPU convolutions split their work by the threads a device gets, which depends on how many
host devices the process forces, and round differently for another split: runs whose bits must
agree force the same number of devices and choose how many they use (e.g. num_devices).
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from lerpnet.distributed import VARIABLES

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cpu_env(devices: int, **extra: str) -> dict[str, str]:
    """The environment of a CPU subprocess with `devices` forced host devices, compiled like the tests."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_DISABLE_MOST_OPTIMIZATIONS="true", **extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], processes: int, devices: int, logs: pathlib.Path, **extra: str) -> list[subprocess.Popen]:
    """`python -m <args>` as `processes` processes of one run, each with `devices` CPU devices; the
    output of process k goes to logs/process_<k>.log."""
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    together = {"LERPNET_COORDINATOR": f"127.0.0.1:{port}", "LERPNET_NUM_PROCESSES": str(processes)}
    running = []
    for k in range(processes):
        env = cpu_env(devices, **(together | {"LERPNET_PROCESS_ID": str(k)} if processes > 1 else {}), **extra)
        with open(logs / f"process_{k}.log", "w") as log:
            running.append(subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log,
                                            stderr=subprocess.STDOUT))
    return running


def finish(running: list[subprocess.Popen], logs: pathlib.Path, timeout: float = 300) -> None:
    """Wait for every process (killing all of them past `timeout`); each must exit 0."""
    deadline = time.monotonic() + timeout
    try:
        codes = [p.wait(timeout=max(deadline - time.monotonic(), 1)) for p in running]
    except subprocess.TimeoutExpired:
        kill(running)
        raise AssertionError(f"the processes ran past {timeout} s:\n{tail(logs)}") from None
    assert codes == [0] * len(running), f"exit codes {codes}:\n{tail(logs)}"


def kill(running: list[subprocess.Popen]) -> None:
    for p in running:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)


def wait_for(condition, running: list[subprocess.Popen], logs: pathlib.Path, timeout: float = 300,
             what: str = "the condition") -> None:
    """Poll `condition()` every 20 ms until it holds; an error if a process exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if any(p.poll() is not None for p in running) or time.monotonic() > deadline:
            kill(running)
            raise AssertionError(f"{what} never happened while every process ran:\n{tail(logs)}")
        time.sleep(0.02)


def tail(logs: pathlib.Path, lines: int = 30) -> str:
    return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-lines:])
                     for log in sorted(logs.glob("process_*.log")))
