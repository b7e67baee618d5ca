"""Figures of measurements: seconds against input size N, one panel per thing timed.

The kernel alone and the whole Algorithm 1 program scale differently (the program adds encoding,
decoding and scoring), so they are drawn side by side on the same kind of axes.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Mapping

from lerpnet import files


def plot_seconds_vs_n(path: str | pathlib.Path, panels: Mapping[str, Iterable[tuple[int, float, str]]],
                      title: str = "") -> pathlib.Path:
    """A PNG with one log-log panel per entry of `panels` (its title -> rows of (N, seconds, what)),
    one line per `what`, sorted by N. E.g. {"kernel only": kernel_rows, "whole program": program_rows}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {name: list(rows) for name, rows in panels.items()}
    if not panels or not all(panels.values()):
        raise ValueError(f"plot_seconds_vs_n: every panel needs rows, got {({k: len(v) for k, v in panels.items()})}")
    for name, rows in panels.items():
        bad = [r for r in rows if len(r) != 3 or not (r[0] > 0 and r[1] > 0)]
        if bad:
            raise ValueError(f"plot_seconds_vs_n: panel {name!r} rows must be (N > 0, seconds > 0, what), got {bad[0]}")
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
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
    with files.atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return pathlib.Path(path)
