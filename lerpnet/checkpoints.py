"""A training run's orbax checkpoints: saved whole or not at all, restored onto any device count,
corrupt ones set aside, and the best state by validation kept apart.

    <workdir>/checkpoints/<step>/   the last few train states (orbax renames a finished save into place)
    <workdir>/best/<step>/          the train state of the best validation so far
    <workdir>/corrupt/<step>/       checkpoints that failed to restore, moved out of the way

Restoring takes a target laid out like the current train state (shapes, dtypes and shardings of
this process's mesh), so a run saved on 4 devices resumes on 1 or 2.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


def _manager(folder: pathlib.Path, max_to_keep: int | None) -> ocp.CheckpointManager:
    """Reads `folder` if it exists; it is made by the first save (`_ensure`), so merely opening a
    workdir writes nothing."""
    return ocp.CheckpointManager(folder, item_handlers=ocp.StandardCheckpointHandler(),
                                 options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=False,
                                                                      enable_async_checkpointing=False))


def _ensure(manager: ocp.CheckpointManager) -> None:
    pathlib.Path(manager.directory).mkdir(parents=True, exist_ok=True)


def _layout(tree: Any) -> dict[str, tuple]:
    """{key path: shape} of a pytree's arrays (what a checkpoint must hold to restore into it)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: x is None)
    return {jax.tree_util.keystr(k, simple=True, separator="/"): tuple(getattr(v, "shape", ())) for k, v in leaves if v is not None}


class Checkpoints:
    """The numbered checkpoints of one run and its best state."""

    def __init__(self, workdir: pathlib.Path, max_to_keep: int):
        self.workdir = workdir
        self.regular = _manager(workdir / "checkpoints", max_to_keep)
        self.best = _manager(workdir / "best", None)

    def latest_step(self) -> int | None:
        return self.regular.latest_step()

    def save(self, step: int, state: Any) -> None:
        _ensure(self.regular)
        self.regular.save(step, args=ocp.args.StandardSave(state))
        self.regular.wait_until_finished()
        self._prune_best()

    def _check_layout(self, step: int, like: Any) -> None:
        """A checkpoint of another model (not a damaged one) is an error, never set aside."""
        stored = _layout(self.regular.item_metadata(step))
        expected = _layout(like)
        if stored != expected:
            diff = sorted(set(stored.items()) ^ set(expected.items()))[:3]
            raise ValueError(f"{self.workdir / 'checkpoints' / str(step)} holds a different train state than this "
                             f"config builds (differences: {diff}); train in another workdir")

    def restore(self, like: Any) -> tuple[Any, int] | None:
        """(state, step) from the newest checkpoint that restores, laid out like the pytree `like`;
        unreadable ones are moved to <workdir>/corrupt/ with a warning. None when there is none."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        for step in sorted(self.regular.all_steps(), reverse=True):
            try:
                metadata_ok = self.regular.item_metadata(step) is not None
            except Exception:  # noqa: BLE001  (orbax raises many kinds for a damaged checkpoint)
                metadata_ok = False
            if metadata_ok:
                self._check_layout(step, like)
            try:
                if not metadata_ok:
                    raise ValueError("its metadata cannot be read")
                return self.regular.restore(step, args=ocp.args.StandardRestore(abstract)), step
            except Exception as e:  # noqa: BLE001
                self._set_aside(step, e)
        return None

    def _set_aside(self, step: int, error: Exception) -> None:
        target = self.workdir / "corrupt" / str(step)
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.workdir / "checkpoints" / str(step), target)
        self.regular.reload()
        logging.warning("checkpoint %d cannot be restored (%s: %s); moved it to %s and fall back to the one "
                        "before", step, type(error).__name__, str(error).splitlines()[0][:200], target)

    def save_best(self, step: int, state: Any) -> None:
        if step in self.best.all_steps():
            self.best.delete(step)
        _ensure(self.best)
        self.best.save(step, args=ocp.args.StandardSave(state))
        self.best.wait_until_finished()
        self._prune_best()

    def _prune_best(self) -> None:
        """Keep the newest best state no later than the latest checkpoint (a resume never goes back past
        it) and every one after it (a resume may drop them); delete the rest."""
        latest = self.latest_step() or 0
        steps = sorted(self.best.all_steps())
        settled = [s for s in steps if s <= latest]
        for s in settled[:-1]:
            self.best.delete(s)

    def best_step(self) -> int | None:
        return self.best.latest_step()

    def rewind(self, step: int) -> None:
        """Forget best states found after `step` (the resumed run redoes those evaluations)."""
        for s in self.best.all_steps():
            if s > step:
                self.best.delete(s)

    def close(self) -> None:
        self.regular.close()
        self.best.close()
