"""The resumable block store: finished blocks of scores on disk, keyed by what computed them.

    <workdir>/.lock              held (flock) by the one run writing here while its store is open
    <workdir>/plan.json          the fingerprint of the run, its key and the block size
    <workdir>/blocks/block_<b>.npz   the scores of block b, with the key, b and the pairs it holds

The fingerprint is content, not paths: a hash of the parameters' bytes, the shapes' ids and
voxels, the reference shapes and every setting that changes a score. A rerun with another
fingerprint on the same workdir is refused, naming the fields that differ; a block file is reused
only when it carries this run's key, its own index and exactly the pairs it should hold, so a torn,
truncated, foreign or copied-over block is computed again instead of being mixed in. Every file
is written atomically (lerpnet.files), so a kill at any moment leaves whole files or none. Several
processes of one run may share one store (a shared workdir): each writes only its own blocks, and
process 0 holds the workdir's lock, so a second run on it is refused with a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import zipfile
from typing import Any

import jax
import numpy as np
from absl import logging

from lerpnet import distributed, files


def content_hash(tree: Any) -> str:
    """SHA-256 of a pytree of arrays: every leaf's path, dtype, shape and bytes, in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        leaf = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}|{leaf.dtype.str}|{leaf.shape}|".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


class BlockStore:
    """plan.json and blocks/ of one workdir, for one fingerprint (a JSON-able dict of the run's content).

    Constructing it reads and checks what is there and writes nothing but the lock of a workdir
    that exists; `start` creates the workdir, locks it and writes plan.json; `load` and `save` are
    what `stream.stream_blocks` calls for each block; `close` lets the lock go (use it as a context).
    """

    def __init__(self, workdir: str | pathlib.Path, fingerprint: dict, block_pairs: int = 0):
        self.workdir = pathlib.Path(workdir)
        self.plan_path = self.workdir / "plan.json"
        self.folder = self.workdir / "blocks"
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from plan.json
        self.key = hashlib.sha256(json.dumps(self.fingerprint, sort_keys=True).encode()).hexdigest()
        self._lock: int | None = None
        self.block_pairs = self._check(block_pairs)
        self._hold_lock()  # a workdir another run is writing: refused now, before any work

    def _check(self, block_pairs: int) -> int:
        """The block size to use: the stored plan's, after checking it is this run's, else `block_pairs`."""
        stored = self._stored_plan()
        if stored is None:
            return block_pairs
        changed = {k: (stored["fingerprint"].get(k), v) for k, v in self.fingerprint.items()
                   if stored["fingerprint"].get(k) != v}
        if block_pairs and block_pairs != stored["block_pairs"]:
            changed["block_pairs"] = (stored["block_pairs"], block_pairs)
        if changed:
            detail = "; ".join(f"{k}: {_short(old)} there, {_short(new)} now" for k, (old, new) in changed.items())
            raise ValueError(f"{self.workdir} holds a run with other settings ({detail[:500]}): use a new "
                             f"workdir, or delete {self.folder} and {self.plan_path} to start over")
        return stored["block_pairs"]

    def _hold_lock(self) -> None:
        """Process 0 locks an existing workdir (lerpnet.files.exclusive_lock) until `close`; when another
        run holds it, every process of this run stops with the same one-line error."""
        refused = None
        if distributed.is_primary() and self._lock is None and self.workdir.is_dir():
            try:
                self._lock = files.exclusive_lock(self.workdir / ".lock", "interpolation")
            except files.InUseError as e:
                refused = e
        if distributed.total(refused is not None):
            raise refused or files.InUseError(f"{self.workdir} is in use by another interpolation (process 0 "
                                              "could not lock it)")

    def _stored_plan(self) -> dict | None:
        """plan.json as written by `start`, or None when there is none (or a damaged one and no blocks)."""
        if not self.plan_path.exists():
            return None
        try:
            stored = files.read_json(self.plan_path)
            if not (isinstance(stored, dict) and isinstance(stored.get("fingerprint"), dict)
                    and isinstance(stored.get("block_pairs"), int) and stored["block_pairs"] > 0):
                raise ValueError(f"{self.plan_path} is not a plan written by lerpnet's block store")
        except ValueError:
            if not any(self.folder.glob("block_*.npz")):
                return None  # nothing was computed under it: start afresh
            raise ValueError(f"{self.plan_path} is damaged or not a block plan: delete it to resume (each finished "
                             f"block is checked against this run before it is reused), or delete it and "
                             f"{self.folder} to start over") from None
        return stored

    def start(self, block_pairs: int) -> None:
        """Lock the workdir and record the plan (fingerprint, key and block size) before the first block
        is written; a plan another run wrote since this store was opened is checked again. With several
        processes, process 0 writes it and clears temporaries (`stream.stream_share` then waits for
        every process before any block is saved)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._hold_lock()
        self.block_pairs = self._check(block_pairs)
        if distributed.is_primary():
            files.remove_stale_temporaries(self.folder)
            files.write_json(self.plan_path, {"fingerprint": self.fingerprint, "key": self.key,
                                              "block_pairs": block_pairs})

    def path(self, b: int) -> pathlib.Path:
        return self.folder / f"block_{b:06d}.npz"

    def done(self, b: int) -> bool:
        """Whether block b's file is there (`load` checks it in full)."""
        return self.path(b).exists()

    def load(self, b: int, rows: np.ndarray) -> dict[str, np.ndarray] | None:
        """The scores of block b if its file is whole and holds this run's pairs `rows`, else None."""
        path = self.path(b)
        if not path.exists():
            return None
        try:
            with np.load(path) as f:
                block = dict(f)
            ok = (str(block.pop("key")) == self.key and int(block.pop("index")) == b
                  and np.array_equal(block.pop("rows"), rows)
                  and all(len(v) == len(rows) for v in block.values()))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            logging.warning("%s is damaged (%s): computing it again", path, e)
            return None
        if not ok:
            logging.warning("%s belongs to another run or block: computing it again", path)
            return None
        return block

    def save(self, b: int, rows: np.ndarray, scores: dict[str, np.ndarray]) -> None:
        files.save_npz(self.path(b), **scores, key=np.array(self.key), index=np.array(b), rows=rows)

    def close(self) -> None:
        """Let the workdir's lock go (the kernel does when the process ends, however it ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> "BlockStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "..." + text[-12:]
