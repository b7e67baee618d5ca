"""Figures of measurements, each a PNG written whole (lerpnet.files):

    plot_curves        a training run's metrics records: loss, validation IoU, occupancy
    plot_seconds_vs_n  seconds against input size N, one panel per thing timed (the kernel alone
                       and the whole Algorithm 1 program scale differently, so they are drawn side
                       by side on the same kind of axes)
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping

from lerpnet import files


def _pyplot():
    """matplotlib.pyplot on the non-interactive backend (imported on first use: most programs draw nothing)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | pathlib.Path, dpi: int) -> pathlib.Path:
    with files.atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    _pyplot().close(fig)
    return pathlib.Path(path)


def plot_curves(records: list[dict], path: str | pathlib.Path) -> pathlib.Path:
    """A PNG of metrics records: training loss; validation IoU at each threshold; predicted vs target occupancy."""
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    fig, axes = _pyplot().subplots(1, 3, figsize=(15, 4))
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
        if ax.get_legend_handles_labels()[0]:  # before the first evaluation the validation panels are empty
            ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def plot_seconds_vs_n(path: str | pathlib.Path, panels: Mapping[str, Iterable[tuple[int, float, str]]],
                      title: str = "") -> pathlib.Path:
    """A PNG with one log-log panel per entry of `panels` (its title -> rows of (N, seconds, what)),
    one line per `what`, sorted by N. E.g. {"kernel only": kernel_rows, "whole program": program_rows}."""
    panels = {name: list(rows) for name, rows in panels.items()}
    if not panels or not all(panels.values()):
        raise ValueError(f"plot_seconds_vs_n: every panel needs rows, got {({k: len(v) for k, v in panels.items()})}")
    for name, rows in panels.items():
        bad = [r for r in rows if len(r) != 3 or not (r[0] > 0 and r[1] > 0)]
        if bad:
            raise ValueError(f"plot_seconds_vs_n: panel {name!r} rows must be (N > 0, seconds > 0, what), got {bad[0]}")
    fig, axes = _pyplot().subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
    for ax, (name, rows) in zip(axes[0], panels.items()):
        for what in dict.fromkeys(r[2] for r in rows):
            line = sorted((n, s) for n, s, w in rows if w == what)
            ax.plot([n for n, _ in line], [s for _, s in line], marker="o", ms=4, label=str(what))
        ax.set(xscale="log", yscale="log", xlabel="N shapes", ylabel="seconds (median)", title=name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi=110)
