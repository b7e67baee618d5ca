"""The experiment directory of a training run: what it writes, and what a rerun resumes from.

    <workdir>/.lock                    held (flock) by the one trainer writing here; a second is refused
    <workdir>/config.json              the config of the latest start (seeds included)
    <workdir>/configs/start_<k>.json   the config of each start, k = 0, 1, ...
    <workdir>/metrics.jsonl            one JSON object per logged step and split ("train" / "val")
    <workdir>/threshold.json           the decision threshold chosen at the latest evaluation, and the best's
    <workdir>/tensorboard/             the same scalars, reconstruction and interpolation images, hparams
    <workdir>/checkpoints/, best/      orbax checkpoints of the train state (see lerpnet.checkpoints)
    <workdir>/reconstructions/         PNGs at each evaluation: validation inputs above their reconstructions
    <workdir>/curves.png               training loss and validation IoU / occupancy, redrawn at each evaluation

Nothing is lost or mixed by a kill at any moment: every file is replaced whole (lerpnet.files), but
metrics.jsonl, which is appended a line at a time, and TensorBoard's event files. A resume from the
checkpoint at step s first rewinds the workdir to s: metrics.jsonl is rewritten to exactly the
records logged before s (a torn last line is dropped), later pictures and best states go, and
TensorBoard purges its later events; the resumed run then redoes them identically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from lerpnet import config_checks, files, metrics, models, plots, render
from lerpnet.checkpoints import Checkpoints


class WorkdirError(ValueError):
    """The workdir cannot be used as asked: another trainer holds it, or it holds a different run."""


def _logged_before(record: dict, step: int) -> bool:
    """Whether a metrics record survives a resume from checkpoint `step`: train records at step s
    hold the loss of update s (redone from checkpoint s on); val records at s evaluate the state
    after s updates."""
    return record["step"] < step if record["split"] == "train" else record["step"] <= step


def metric_values(record: dict) -> dict[str, float]:
    """A metrics record's values without its step and split ("nan" strings back to floats)."""
    return {k: float(v) for k, v in record.items() if k not in ("step", "split")}


class Workdir:
    """Config, metrics, TensorBoard, checkpoints and pictures of one experiment directory, held
    (locked) from opening to `close`."""

    def __init__(self, path: str | pathlib.Path, max_checkpoints: int = 3):
        self.path = pathlib.Path(path).absolute()
        if self.path.exists() and not self.path.is_dir():
            raise WorkdirError(f"{self.path} is not a directory: pass a new or existing workdir folder")
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = files.exclusive_lock(self.path / ".lock", "trainer")
        except files.InUseError as e:
            raise WorkdirError(str(e)) from None
        for folder in (self.path, self.path / "configs", self.path / "reconstructions"):
            files.remove_stale_temporaries(folder)
        self.checkpoints = Checkpoints(self.path, max_checkpoints)
        self.records: list[dict] = []  # the metrics records of the run so far (set by `begin`)
        self._metrics = None
        self._tensorboard = None

    # --- what the workdir holds -----------------------------------------------------------------

    def stored_config(self) -> dict | None:
        path = self.path / "config.json"
        return files.read_json(path) if path.exists() else None

    def read_metrics(self) -> list[dict]:
        """The whole records of metrics.jsonl; a torn or damaged line (a kill mid-write) is skipped."""
        path = self.path / "metrics.jsonl"
        records = []
        for number, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and {"step", "split"} <= record.keys():
                    records.append(record)
                    continue
            logging.warning("%s: line %d is not a whole record (an interrupted write?); dropped", path, number)
        return records

    def latest_step(self) -> int | None:
        return self.checkpoints.latest_step()

    def changes(self, config: ml_collections.ConfigDict, harmless=()) -> dict:
        """{field: (stored, new)} that `config` changes against config.json (empty for a new workdir)."""
        stored = self.stored_config()
        return {} if stored is None else config_checks.changed_fields(stored, config, harmless)

    def finished(self, num_steps: int) -> dict | None:
        """The last validation metrics when the run is done (a checkpoint at or past `num_steps` and
        its evaluation logged), else None."""
        latest = self.latest_step()
        if latest is None or latest < num_steps:
            return None
        val = [r for r in self.read_metrics() if r["split"] == "val" and r["step"] == latest]
        return metric_values(val[-1]) if val else None

    # --- starting and resuming ------------------------------------------------------------------

    def restore(self, like: Any) -> Any:
        """The newest readable checkpoint laid out like the pytree `like` (None if there is none)."""
        restored = self.checkpoints.restore(like)
        return None if restored is None else restored[0]

    def begin(self, step: int, config: ml_collections.ConfigDict, fresh: bool = False) -> list[dict]:
        """Start (or resume at checkpoint `step`): rewind everything written past `step` (all of it when
        `fresh`), keep this start's config; returns the metrics records kept."""
        until = -1 if fresh else step
        kept = [r for r in self.read_metrics() if _logged_before(r, until)]
        files.write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        for png in (self.path / "reconstructions").glob("step_*.png"):
            if int(png.stem.split("_")[1]) > until:
                png.unlink()
        self.checkpoints.rewind(until)
        val = [r for r in kept if r["split"] == "val"]
        (self.path / "threshold.json").unlink(missing_ok=True)
        if val:
            self.save_threshold(val[-1]["step"], metric_values(val[-1]), self.best_of(kept))
        starts = len(list((self.path / "configs").glob("start_*.json")))
        text = config.to_json_best_effort(indent=2, sort_keys=True) + "\n"
        files.write_text(self.path / "configs" / f"start_{starts}.json", text)
        files.write_text(self.path / "config.json", text)
        self.records = list(kept)
        self._metrics = open(self.path / "metrics.jsonl", "a")
        # imported here: tensorboardX imports PyTorch when that is installed (seconds), and only a
        # training run writes events; every program that only reads a run starts without it
        import tensorboardX

        self._tensorboard = tensorboardX.SummaryWriter(str(self.path / "tensorboard"), purge_step=max(until, 0))
        for record in kept:
            if record["step"] >= until:  # purged from TensorBoard with the rest: shown again
                self._scalars(record["step"], record["split"], metric_values(record))
        return kept

    # --- logging --------------------------------------------------------------------------------

    def _scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._tensorboard.add_scalar(f"{split}/{name.replace('@', '_')}", value, step)
        self._tensorboard.flush()

    def log(self, step: int, split: str, values: dict[str, Any]) -> None:
        """Append one JSON line (whole, flushed) and the matching TensorBoard scalars (`<split>/<name>`)."""
        values = {k: float(v) for k, v in values.items()}
        record = {"step": int(step), "split": split}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        self._scalars(step, split, values)
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        self.records.append(record)

    def log_image(self, step: int, tag: str, image: np.ndarray) -> None:
        self._tensorboard.add_image(tag, np.asarray(image, np.uint8), step, dataformats="HWC")

    def save_reconstructions(self, step: int, image: np.ndarray) -> pathlib.Path:
        """The montage of validation inputs above their reconstructions, as a PNG and in TensorBoard."""
        self.log_image(step, "val/reconstructions", image)
        return render.save_png(self.path / "reconstructions" / f"step_{step:07d}.png", image)

    def save_curves(self, pending: list[dict] = ()) -> pathlib.Path:
        """curves.png of the records so far and `pending` ones (about to be logged)."""
        return plots.plot_curves(self.records + list(pending), self.path / "curves.png")

    @staticmethod
    def best_of(records: list[dict]) -> dict | None:
        """{"step", "threshold", "val_iou"} of the best validation record (IoU at its chosen threshold)."""
        best = None
        for r in records:
            if r["split"] == "val":
                threshold, iou = metrics.choose_threshold(metric_values(r))
                if best is None or iou > best["val_iou"]:
                    best = {"step": r["step"], "threshold": threshold, "val_iou": iou}
        return best

    def save_threshold(self, step: int, val: dict[str, float], best: dict | None) -> None:
        """threshold.json: the threshold chosen on validation at `step` (what readers of the run decode
        with) and the best evaluation so far (whose state is in best/)."""
        threshold, iou = metrics.choose_threshold(val)
        files.write_json(self.path / "threshold.json",
                         {"threshold": threshold, "val_iou": iou, "step": int(step), "best": best})

    def save_best(self, step: int, state: Any) -> None:
        self.checkpoints.save_best(step, state)

    def log_hparams(self, config: ml_collections.ConfigDict, values: dict[str, float]) -> None:
        """The flattened config beside the final results, for TensorBoard's HPARAMS tab."""
        hparams = {k: (v if isinstance(v, bool | int | float | str) else json.dumps(v))
                   for k, v in config_checks.flatten(config).items()}
        self._tensorboard.add_hparams(hparams, values, name="hparams")

    def save(self, step: int, state: Any) -> None:
        self.checkpoints.save(step, state)

    # --- closing --------------------------------------------------------------------------------

    def __enter__(self) -> "Workdir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.checkpoints.close()
        for handle in (self._tensorboard, self._metrics):
            if handle is not None:
                handle.close()
        os.close(self._lock)


# --- reading a finished (or running) workdir back: what every program that uses a trained run calls ---

DEFAULT_THRESHOLD = 0.5  # a voxel is full where sigmoid(logit) > this, unless the run stored its own


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained run: its config, the parameters of one checkpoint, which checkpoint that is, and the
    decision threshold to read its decoded grids with (the run's `threshold.json`, else 0.5)."""

    config: ml_collections.ConfigDict
    params: dict
    checkpoint: str  # "<workdir>/checkpoints/<step>"
    threshold: float
    val_iou: float | None = None  # validation IoU at that threshold, when the run recorded it


POOR_VAL_IOU = 0.3  # below this a run's decoded shapes are mostly specks: its readers warn


def stored_threshold(run_dir: str | pathlib.Path) -> tuple[float, float | None]:
    """The run's `threshold.json`'s (threshold, val_iou) when it has one, else (the default 0.5, None)."""
    path = pathlib.Path(run_dir) / "threshold.json"
    if not path.exists():
        return DEFAULT_THRESHOLD, None
    stored = files.read_json(path)
    value = stored.get("threshold") if isinstance(stored, dict) else None
    if not isinstance(value, int | float) or not 0.0 < value < 1.0:
        raise ValueError(f"{path}: 'threshold' must be a number strictly between 0 and 1, got {value!r}")
    iou = stored.get("val_iou")
    return float(value), float(iou) if isinstance(iou, int | float) else None


def load_run(path: str | pathlib.Path, step: int | None = None) -> Run:
    """The parameters of a run written by `Workdir` (read-only: nothing is written there).

    path: the run's workdir (config.json + checkpoints/; `step` None = the latest checkpoint) or one
    checkpoint folder, `<workdir>/checkpoints/<step>`. The parameters are restored into a target
    built from config.json's model and placed on the first local device, so a run trained on any
    number of devices restores anywhere; a checkpoint that does not hold that model is an error
    naming both. Model fields added since the run was trained take their defaults. A run that kept a
    weight EMA (`train.ema_decay`) is read as its EMA: the weights it evaluated and chose its threshold on.
    """
    if not str(path):
        raise ValueError("the run's path is empty: give a workdir written by lerpnet-train")
    root = pathlib.Path(path).expanduser().absolute()
    if root.name.isdigit() and root.parent.name == "checkpoints":
        root, step = root.parent.parent, int(root.name)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: the run must be a workdir written by lerpnet-train "
                                "(config.json + checkpoints/) or one of its checkpoints/<step>")
    config = ml_collections.ConfigDict(files.read_json(config_path))
    config.model = models.model_config(**config.model)
    manager = ocp.CheckpointManager(root / "checkpoints", options=ocp.CheckpointManagerOptions(create=False),
                                    item_handlers=ocp.PyTreeCheckpointHandler())
    try:
        steps = manager.all_steps()
        if not steps:
            raise FileNotFoundError(f"{root / 'checkpoints'} holds no finished checkpoint")
        step = max(steps) if step is None else step
        if step not in steps:
            raise FileNotFoundError(f"{root / 'checkpoints'} has no checkpoint at step {step} (it has {sorted(steps)})")
        where = root / "checkpoints" / str(step)
        like = jax.eval_shape(models.Autoencoder(config.model).init, jax.random.key(0),
                              jax.ShapeDtypeStruct((1, 32, 32, 32), jnp.float32))
        shapes = lambda tree: {jax.tree_util.keystr(k): tuple(v.shape)  # noqa: E731
                               for k, v in jax.tree_util.tree_leaves_with_path(tree)}
        tree = manager.item_metadata(step).tree
        key = "ema_params" if tree.get("ema_params") else "params"  # a run that kept an EMA is read as its EMA
        expected, found = shapes(like), shapes(tree.get(key, {}))
        if found != expected:
            diff = sorted(set(found.items()) ^ set(expected.items()))[:4]
            raise ValueError(f"checkpoint {where} does not match the model in {config_path}: parameters differ at {diff}")
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = {key: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), like)}
        restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), target)
        state = manager.restore(step, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args,
                                                                  partial_restore=True))
    finally:
        manager.close()
    return Run(config, state[key], str(where), *stored_threshold(root))
