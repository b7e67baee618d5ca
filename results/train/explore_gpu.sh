#!/usr/bin/env bash
# The short GPU run (learning curves only): four ModelNet-chair recipes side by side on one GPU for
# SECS seconds each; a 2x2 of model width (default / wide) by training poses (12 rotations / canonical).
# Run from the repo root on the device machine: bash results/train/explore_gpu.sh
set -u
SECS=${SECS:-190}
source bin/device-env.sh
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.2
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "
from lerpnet.data import dataset_config, load_dataset
for r in ('all', 'canonical'):
    load_dataset(dataset_config(source='modelnet', path='../shared/data/3dshapenets_chair_train_vox30.tar.gz', rotations=r))
" 2>&1 | tail -1
mkdir -p runs
wide='--config.model.encoder_features=(64,128) --config.model.decoder_features=(64,64)'
run() {
  local name=$1; shift
  timeout -s INT "$SECS" python3 -m experiments.train --config=configs/modelnet_chairs.py --workdir="runs/$name" \
    --config.train.num_steps=200000 --config.train.progress=False --config.train.checkpoint_every=100000 "$@" \
    > "runs/$name.log" 2>&1 &
}
run A_default_all
run B_default_canonical --config.data.rotations=canonical
run C_wide_all $wide
run D_wide_canonical --config.data.rotations=canonical $wide
wait
python3 - <<'PY'
import json, pathlib
for run in sorted(pathlib.Path("runs").glob("*/metrics.jsonl")):
    recs = [json.loads(l) for l in run.read_text().splitlines() if l.strip()]
    val = [(r["step"], round(r["iou@0.5"], 3), round(r["iou@0.3"], 3)) for r in recs if r["split"] == "val"]
    tr = [r for r in recs if r["split"] == "train"]
    print(run.parent.name, "shapes/s", round(tr[-1]["shapes_per_s"]) if tr else None, "last loss",
          round(tr[-1]["loss"], 4) if tr else None)
    print("  val (step, iou@0.5, iou@0.3):", val)
PY
grep -h "Error\|error" runs/*.log | head -5
tar czf "$OUT/explore.tgz" runs/*.log runs/*/metrics.jsonl runs/*/config.json runs/*/reconstructions
