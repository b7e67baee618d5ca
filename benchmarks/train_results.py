"""Turn a finished training run into its results folder (what results/train/ holds).

    python -m benchmarks.train_results --run=RUN --out=OUT --command="python -m experiments.train ..." \
        --exit_code=0 --wall_s=88 --log=train.log

Writes into OUT: run.json (command, exit code, wall time, device, the final and best validation
metrics, the run's threshold, the median training rate), README.md (the same as a table), and the run's
threshold.json, metrics.jsonl, config.json (its data path cut to the file name: the data location is
the reader's), curves.png, the last evaluation's reconstructions.png and the log without its
warnings. Checkpoints stay in RUN.
benchmarks/reproduce_gpu.sh runs it after `experiments.train`.
"""

from __future__ import annotations

import json
import pathlib
import re
import statistics
from typing import Any

from absl import app, flags

from lerpnet import files, workdir
from lerpnet.device import device_info

_DATA_COUNTS = re.compile(r"data: (\d+) training shapes, (\d+) validation shapes")


def summarize(records: list[dict[str, Any]], config: dict[str, Any], *, command: str, exit_code: int,
              wall_s: float, device: dict[str, Any], threshold: tuple[float, float | None],
              log: str = "") -> dict[str, Any]:
    """run.json's content: final and best validation metrics, the run's threshold (what its readers
    decode with) and validation IoU there, and the median training rate (the first logging interval,
    which includes compilation, left out)."""
    val = [r for r in records if r["split"] == "val"]
    if not val:
        raise ValueError("metrics.jsonl holds no validation record: the run stopped before its first evaluation")
    rates = [r["shapes_per_s"] for r in records if r["split"] == "train"][1:]
    counts = _DATA_COUNTS.search(log)
    return dict(command=command, exit_code=exit_code, wall_s=wall_s, device=device,
                dtype=config["model"]["dtype"], batch_size=config["train"]["batch_size"], steps=val[-1]["step"],
                data_shapes=dict(train=int(counts[1]), val=int(counts[2])) if counts else None,
                final_val=val[-1], best_val=max(val, key=lambda r: r["iou@0.5"]),
                threshold=threshold[0], val_iou_at_threshold=threshold[1],
                train_shapes_per_s_median=statistics.median(rates) if rates else None)


def readme(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """README.md: what was run, on what, and the results table."""
    data, model, final, best = config["data"], config["model"], summary["final_val"], summary["best_val"]
    shapes = summary["data_shapes"]
    data_cell = f"{data['source']} {data.get('category', '')}s, rotations: {data.get('rotations', '')}".strip()
    if shapes:
        data_cell += f", {shapes['train']:,} train / {shapes['val']:,} val shapes"
    device = summary["device"]
    rate = summary["train_shapes_per_s_median"]
    at = summary["val_iou_at_threshold"]
    iou_there = "" if at is None else f", validation IoU {at:.3f} there"
    lines = [
        "# Training results",
        "",
        f"    {summary['command']}",
        "",
        f"On one {device['device']} (jax {device['jax']}, {summary['dtype']}), {device['date'][:10]}: "
        f"exit status {summary['exit_code']}, {summary['wall_s']:.0f} s wall for the whole command.",
        "",
        "| data | model widths (enc / dec) | steps x batch | val IoU@0.5 | IoU@0.4 | IoU@0.3 "
        "| occupancy pred / target | train shapes/s | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {data_cell} | {tuple(model['encoder_features'])} / {tuple(model['decoder_features'])} "
        f"| {final['step']:,} x {summary['batch_size']} | {final['iou@0.5']:.3f} | {final['iou@0.4']:.3f} "
        f"| {final['iou@0.3']:.3f} | {final['pred_occupancy']:.4f} / {final['target_occupancy']:.4f} "
        f"| {'' if rate is None else f'{rate:,.0f}'} | {summary['wall_s']:.0f} s |",
        "",
        f"The run's threshold, chosen on validation (`threshold.json`, what every reader of the run decodes with): "
        f"{summary['threshold']:.2f}{iou_there}. "
        f"Best validation IoU@0.5: {best['iou@0.5']:.3f} at step {best['step']:,}. Files: `run.json` (the same "
        "figures, the device and versions), `metrics.jsonl` (every logged step), `config.json` (the full config; "
        "`data.path` is the file name only), `curves.png`, `reconstructions.png` (the last evaluation: validation "
        "inputs above their reconstructions), `threshold.json`, `train.log`.",
    ]
    return "\n".join(lines) + "\n"


def write_results(run: pathlib.Path, out: pathlib.Path, *, command: str, exit_code: int, wall_s: float,
                  log: str = "") -> dict[str, Any]:
    """Writes OUT from the run folder and the command's log text; returns run.json's content."""
    config = files.read_json(run / "config.json")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = summarize(records, config, command=command, exit_code=exit_code, wall_s=wall_s, device=device_info(),
                        threshold=workdir.stored_threshold(run), log=log)
    config["data"]["path"] = pathlib.Path(config["data"].get("path") or "").name
    files.write_json(out / "config.json", config)
    files.write_json(out / "run.json", summary)
    files.write_text(out / "README.md", readme(summary, config))
    files.write_bytes(out / "metrics.jsonl", (run / "metrics.jsonl").read_bytes())
    if (run / "threshold.json").is_file():
        files.write_bytes(out / "threshold.json", (run / "threshold.json").read_bytes())
    pictures = sorted((run / "reconstructions").glob("*.png"))
    for source, name in ((run / "curves.png", "curves.png"), (pictures[-1] if pictures else None, "reconstructions.png")):
        if source is not None and source.exists():
            files.write_bytes(out / name, source.read_bytes())
    if log:
        kept = [line[:400] for line in log.splitlines() if not line.startswith("W")]
        files.write_text(out / "train.log", "\n".join(kept) + "\n")
    return summary


def define_flags() -> None:
    """The command line's flags, defined only when this is the program run (importable beside the benchmarks)."""
    flags.DEFINE_string("run", None, "The training workdir (config.json, metrics.jsonl, curves.png, reconstructions/).")
    flags.DEFINE_string("out", None, "The results folder to write.")
    flags.DEFINE_string("command", "", "The training command, as the reader would type it.")
    flags.DEFINE_integer("exit_code", 0, "The training command's exit status.")
    flags.DEFINE_float("wall_s", None, "The training command's wall time in seconds.")
    flags.DEFINE_string("log", "", "The training command's output, copied without warning lines.")
    flags.mark_flags_as_required(["run", "out", "wall_s"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    run = pathlib.Path(FLAGS.run)
    if not (run / "metrics.jsonl").is_file() or not (run / "config.json").is_file():
        raise app.UsageError(f"--run={run} holds no training run (config.json and metrics.jsonl are missing)")
    log = pathlib.Path(FLAGS.log).read_text(errors="replace") if FLAGS.log else ""
    out = pathlib.Path(FLAGS.out)
    write_results(run, out, command=FLAGS.command, exit_code=FLAGS.exit_code, wall_s=FLAGS.wall_s, log=log)
    print(f"wrote {out}/ (README.md, run.json, metrics, config, pictures)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
