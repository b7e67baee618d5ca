"""Reading input files safely: regular files only, bounded sizes, every failure naming the file.

A dataset is thousands of files made by others, so anything can be at a path: a directory named
`x.binvox`, a FIFO (opening one blocks forever), a symlink to `/dev/zero` (reads until memory runs
out), a dangling or looping symlink, a file we may not read. Each is refused up front with a
`VoxelFormatError` naming the path, before any byte is read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pathlib
import stat

MAX_FILE_BYTES = 1 << 30  # no voxel or mesh file of a supported dataset comes near 1 GiB
MAX_GRID_SIDE = 1024  # the largest grid side any reader accepts (binvox's own limit)
MAX_ARRAY_BYTES = 1 << 30  # the largest decoded array any reader allocates (1024^3 bools)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class VoxelFormatError(ValueError):
    """A voxel file, folder or dataset that cannot be read as binary voxel grids; names the path."""

    def __init__(self, source: str | os.PathLike, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = str(source)
        self.problem = problem


def os_problem(err: OSError) -> str:
    """A short description of an OSError, without the path (the caller names it)."""
    if err.errno == errno.ELOOP:
        return "symlink loop (too many levels of symbolic links)"
    return err.strerror or type(err).__name__


def check_regular_file(path: str | os.PathLike) -> os.stat_result:
    """The stat of `path` if it is (or links to) a regular file of at most MAX_FILE_BYTES."""
    try:
        info = os.stat(path)
    except OSError as err:
        dangling = err.errno == errno.ENOENT and os.path.islink(path)
        raise VoxelFormatError(path, "dangling symlink (its target does not exist)" if dangling
                               else f"cannot read ({os_problem(err)})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
        raise VoxelFormatError(path, f"is {kind}, not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise VoxelFormatError(path, f"is {info.st_size / 2**30:.1f} GiB, over the {MAX_FILE_BYTES >> 30} GiB limit")
    return info


def read_file(path: str | os.PathLike) -> bytes:
    """All bytes of a regular file, checked before opening (and again on the open descriptor)."""
    check_regular_file(path)
    try:  # O_NONBLOCK: should the path have been swapped for a FIFO since the check, open still returns
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise VoxelFormatError(path, f"cannot read ({os_problem(err)})") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VoxelFormatError(path, "is not a regular file")
        try:
            data = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise VoxelFormatError(path, f"cannot read ({os_problem(err)})") from None
    if len(data) > MAX_FILE_BYTES:
        raise VoxelFormatError(path, f"is over the {MAX_FILE_BYTES >> 30} GiB limit")
    return data


def file_digest(path: str | os.PathLike) -> bytes:
    """SHA-256 of a regular file, streamed (archives are hashed, not loaded)."""
    check_regular_file(path)
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").digest()
    except OSError as err:
        raise VoxelFormatError(path, f"cannot read ({os_problem(err)})") from None


def find_files(root: pathlib.Path, suffixes: tuple[str, ...], recursive: bool) -> list[pathlib.Path]:
    """Entries under `root` whose names end in one of `suffixes` (any case), sorted.

    Directories and other non-files with such names are listed too, so that reading them fails by
    name instead of their being skipped unseen. Symlinked folders inside `root` are not followed
    (no loops); an unreadable folder is an error naming it.
    """

    def fail(err: OSError):
        raise VoxelFormatError(err.filename or root, f"cannot list folder ({os_problem(err)})")

    found = []
    for folder, dirs, files in os.walk(root, onerror=fail):
        found += [pathlib.Path(folder, name) for name in dirs + files if name.lower().endswith(suffixes)]
        if not recursive:
            break
    return sorted(found)


def check_array_size(source, shape: tuple[int, ...], itemsize: int) -> None:
    """Refuse a declared array shape before allocating it: a cubic 3-D grid within the caps."""
    if len(shape) != 3 or len(set(shape)) != 1 or shape[0] == 0:
        raise VoxelFormatError(source, f"expected a cubic 3-D voxel grid, got shape {tuple(shape)}")
    if shape[0] > MAX_GRID_SIDE:
        raise VoxelFormatError(source, f"grid side {shape[0]} is over the limit of {MAX_GRID_SIDE}")
    size = shape[0] ** 3 * itemsize
    if size > MAX_ARRAY_BYTES:
        raise VoxelFormatError(source, f"array would decode to {size / 2**30:.1f} GiB, over the "
                                       f"{MAX_ARRAY_BYTES >> 30} GiB limit")
