"""Crash-safe file writes: a file is either its old content, its new content, or absent.

Every writer in lerpnet goes through these, so a process killed at any moment (or a full disk)
never leaves a torn JSON, PNG or block file behind: the bytes go to a temporary file in the same
folder, are fsynced, and the temporary file is renamed over the target. `exclusive_lock` keeps a
second writer out of a folder while one is writing there.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pathlib
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | pathlib.Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces `path` only when the block exits cleanly."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | pathlib.Path, data: bytes) -> pathlib.Path:
    with atomic_open(path) as f:
        f.write(data)
    return pathlib.Path(path)


def write_text(path: str | pathlib.Path, text: str) -> pathlib.Path:
    return write_bytes(path, text.encode())


def write_json(path: str | pathlib.Path, value: Any) -> pathlib.Path:
    """Indented JSON with a final newline; values JSON cannot hold are written as strings."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | pathlib.Path) -> Any:
    """The JSON in `path`; a damaged file is a ValueError naming it (never a bare JSONDecodeError)."""
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it or restore it from a copy") from None


def save_npz(path: str | pathlib.Path, **arrays: Any) -> pathlib.Path:
    """np.savez into `path`, atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def remove_stale_temporaries(folder: str | pathlib.Path) -> None:
    """Delete the temporary files an interrupted `atomic_open` left in `folder`."""
    for stale in pathlib.Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


class InUseError(ValueError):
    """Another process holds the lock of a folder: it is writing there."""


def exclusive_lock(path: str | pathlib.Path, holder: str) -> int:
    """An exclusive flock on the file `path` (created if missing), held until the returned descriptor
    is closed; the kernel drops it when the process dies, so a killed writer never leaves it locked.

    A lock another process holds is an InUseError naming the folder and `holder`, what kind of
    program holds it (e.g. "trainer"), at once (never a wait).
    """
    path = pathlib.Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InUseError(f"{path.parent} is in use by another {holder} (it holds {path}); wait for it to finish "
                         "or pass another --workdir") from None
    return fd
