"""The experiment directory: everything a training run writes, and what a rerun resumes from.

    <workdir>/config.json         the full config of the latest start (seeds included)
    <workdir>/metrics.jsonl       one JSON object per logged step and split ("train" / "val")
    <workdir>/tensorboard/        TensorBoard event files with the same scalars
    <workdir>/checkpoints/<step>/ orbax checkpoints of the train state (the last few kept)
    <workdir>/reconstructions/    PNGs at each evaluation: validation inputs above their reconstructions
    <workdir>/curves.png          training loss and validation IoU / occupancy so far, redrawn at each evaluation

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a run
killed at any moment leaves only whole checkpoints; the half-written one is ignored and cleaned up.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import tensorboardX

from lerpnet import render


def _logged_before(line: str, step: int) -> bool:
    """Whether a metrics line survives a resume from checkpoint `step` (a torn last line does not).

    Train records at step s hold the loss of update s (redone from checkpoint s onward);
    val records at step s evaluate the state after s updates.
    """
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return record["step"] < step if record["split"] == "train" else record["step"] <= step


def plot_curves(records: list[dict], path: pathlib.Path) -> pathlib.Path:
    """A PNG of metrics records: training loss; validation IoU at each threshold; predicted vs target occupancy."""
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot([r["step"] for r in train], [float(r["loss"]) for r in train], label="train")
    axes[0].plot([r["step"] for r in val], [float(r["loss"]) for r in val], label="validation")
    axes[0].set(title="loss", xlabel="step", yscale="log")
    for key in sorted(k for k in (val[0] if val else {}) if k.startswith("iou@")):
        axes[1].plot([r["step"] for r in val], [float(r[key]) for r in val], marker=".", label=key)
    axes[1].set(title="validation IoU", xlabel="step", ylim=(0, 1))
    for key in ("pred_occupancy", "target_occupancy"):
        axes[2].plot([r["step"] for r in val], [float(r[key]) for r in val], marker=".", label=key)
    axes[2].set(title="validation occupancy (threshold 0.5)", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class Workdir:
    """Config, metrics, TensorBoard, checkpoints and pictures of one experiment directory."""

    def __init__(self, path: str | pathlib.Path, max_checkpoints: int = 3):
        self.path = pathlib.Path(path).absolute()
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = ocp.CheckpointManager(
            self.path / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=max_checkpoints, create=True,
                                                 enable_async_checkpointing=False),
        )
        self._tensorboard = tensorboardX.SummaryWriter(str(self.path / "tensorboard"))
        self._metrics = open(self.path / "metrics.jsonl", "a")

    def write_config(self, config: ml_collections.ConfigDict) -> None:
        (self.path / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")

    def log(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        """Append one JSON line and the matching TensorBoard scalars (`<split>/<name>`)."""
        values = {k: float(v) for k, v in metrics.items()}
        record = {"step": int(step), "split": split}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in values.items()})
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        for name, value in values.items():
            self._tensorboard.add_scalar(f"{split}/{name.replace('@', '_')}", value, step)
        self._tensorboard.flush()

    def drop_metrics_after(self, step: int) -> None:
        """On resume from checkpoint `step`: forget what the interrupted run logged past it (it is redone)."""
        self._metrics.close()
        path = self.path / "metrics.jsonl"
        keep = [line for line in path.read_text().splitlines(keepends=True) if _logged_before(line, step)]
        path.write_text("".join(keep))
        self._metrics = open(path, "a")

    def save_reconstructions(self, step: int, inputs: np.ndarray, outputs: np.ndarray, labels) -> pathlib.Path:
        """Inputs (top row) above their reconstructions (bottom row), one column per shape."""
        image = render.montage(list(inputs) + list(outputs), ncols=len(inputs),
                               labels=[f"in {i}" for i in labels[0]] + [f"out {o}" for o in labels[1]])
        return render.save_png(self.path / "reconstructions" / f"step_{step:07d}.png", image)

    def read_metrics(self) -> list[dict]:
        return [json.loads(line) for line in (self.path / "metrics.jsonl").read_text().splitlines() if line.strip()]

    def save_curves(self) -> pathlib.Path:
        return plot_curves(self.read_metrics(), self.path / "curves.png")

    def latest_step(self) -> int | None:
        return self.checkpoints.latest_step()

    def restore(self, like: Any) -> Any:
        """The latest checkpoint, laid out (shapes, dtypes, shardings) like the pytree `like`."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.checkpoints.restore(self.latest_step(), args=ocp.args.StandardRestore(abstract))

    def save(self, step: int, state: Any) -> None:
        self.checkpoints.save(step, args=ocp.args.StandardSave(state))
        self.checkpoints.wait_until_finished()

    def __enter__(self) -> "Workdir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.checkpoints.close()
        self._tensorboard.close()
        self._metrics.close()
