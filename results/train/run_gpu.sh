#!/usr/bin/env bash
# The results run on the GPU: configs/modelnet_chairs.py, then the metrics, curves, reconstructions,
# command, wall time and a summary into $OUT (copied to results/train/ afterwards; weights stay behind).
# Run from the repo root on the device machine: bash results/train/run_gpu.sh
set -u
[ -n "${SKIP_ENV:-}" ] || source bin/device-env.sh
CMD="python3 -m experiments.train --config=${CONFIG:-configs/modelnet_chairs.py} --workdir=runs/modelnet_chairs --config.train.progress=False"
start=$(date +%s.%N)
mkdir -p runs
timeout -s INT "${LIMIT:-470}" $CMD > runs/train.log 2>&1
rc=$?
wall=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
grep -v "^W" runs/train.log | cut -c1-400 > "$OUT/train.log"
CMD="$CMD" RC=$rc WALL=$wall python3 - <<'PY'
import json, os, pathlib, shutil, statistics
from lerpnet.timing import device_info
out, wd = pathlib.Path(os.environ["OUT"]), pathlib.Path("runs/modelnet_chairs")
recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines() if l.strip()]
val = [r for r in recs if r["split"] == "val"]
rates = [r["shapes_per_s"] for r in recs if r["split"] == "train"][1:]  # the first interval includes compilation
cfg = json.loads((wd / "config.json").read_text())
best = max(val, key=lambda r: r["iou@0.5"])
summary = dict(command=os.environ["CMD"], exit_code=int(os.environ["RC"]), wall_s=float(os.environ["WALL"]),
               device=device_info(), dtype=cfg["model"]["dtype"], batch_size=cfg["train"]["batch_size"],
               steps=val[-1]["step"], final_val=val[-1], best_val=best,
               train_shapes_per_s_median=statistics.median(rates) if rates else None)
(out / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
for name in ("metrics.jsonl", "config.json", "curves.png"):
    shutil.copy(wd / name, out / name)
shutil.copy(sorted((wd / "reconstructions").glob("*.png"))[-1], out / "reconstructions.png")
f = val[-1]
(out / "results.md").write_text(
    "| data | model widths (enc / dec) | steps x batch | val IoU@0.5 | IoU@0.4 | IoU@0.3 | occupancy pred / target "
    "| train shapes/s | wall time | device |\n|---|---|---|---|---|---|---|---|---|---|\n"
    f"| ModelNet10 chairs, 755 train (x12 rotations) / 84 val | {tuple(cfg['model']['encoder_features'])} / "
    f"{tuple(cfg['model']['decoder_features'])} | {f['step']} x {cfg['train']['batch_size']} | {f['iou@0.5']:.3f} "
    f"| {f['iou@0.4']:.3f} | {f['iou@0.3']:.3f} | {f['pred_occupancy']:.4f} / {f['target_occupancy']:.4f} "
    f"| {summary['train_shapes_per_s_median']:.0f} | {summary['wall_s']:.0f} s | {summary['device']['device']} |\n")
print(json.dumps(summary, indent=1))
PY
