#!/usr/bin/env bash
# Training and Algorithm 1 over several GPUs of one CUDA host: benchmarks/multi_gpu.sh OUTDIR [PART ...]
#
# Needs the package with its CUDA extra (`pip install -e .[cuda]`); runs from anywhere; no data
# needed (procedural chairs). For each GPU count of LERPNET_GPUS (default 1 2 4 8, those up to the
# GPUs present) it launches the programs itself, either one process per GPU joined by
# jax.distributed (lerpnet.distributed: LERPNET_COORDINATOR on 127.0.0.1, JAX_LOCAL_DEVICE_IDS = the
# process's GPU) or one process with all of those GPUs (CUDA_VISIBLE_DEVICES):
#
#   train       OUTDIR/train/gpus<k>_<launch>/launch.json   experiments.train on LERPNET_TRAIN_CONFIG (default
#                                                          configs/default.py: the study's widths), global batch
#                                                          k x LERPNET_PER_GPU_BATCH (default 128), LERPNET_TRAIN_STEPS
#                                                          (default 300) steps, launched as one process per GPU
#                                                          (LERPNET_TRAIN_LAUNCH=processes, the default) or single;
#                                                          the runs themselves: OUTDIR/runs/train_gpus<k>_<launch>
#   algorithm1  OUTDIR/algorithm1/n<N>_gpus<k>_<launch>.json  benchmarks.multi_gpu --part=algorithm1: every ordered
#                                                          pair of N procedural chairs decoded and scored (novelty
#                                                          against LERPNET_REFERENCE, default 755, more), end to end,
#                                                          LERPNET_REPEATS (default 2) times, the first compiling:
#                                                          N = LERPNET_SCALING_N (default 2000) on every count as one
#                                                          process, and N = LERPNET_ALGORITHM1_N (default 10000) on the
#                                                          largest count both as one process and one process per GPU;
#                                                          the model is the largest count's training run (or
#                                                          LERPNET_RUN=DIR, or the study's model initialised when neither)
#
# No PART: both, in this order; then OUTDIR/train/scaling.{json,md} and OUTDIR/algorithm1/scaling.{json,md}:
# each count's rate and speed-up over one GPU, with the device, device count and versions. Each command
# is stopped after LERPNET_TIMEOUT seconds (default 3600); its output goes to OUTDIR/logs/ (one log per
# process, each ending with its exit status and wall time). The exit status is the number of failed
# commands. Rerunning resumes: a finished training run is not trained again.
# Without GPUs the same runs use forced CPU host devices (for a tiny trial of this script, e.g.
# LERPNET_GPUS="1 2" LERPNET_TRAIN_CONFIG=configs/default.py:smoke LERPNET_PER_GPU_BATCH=2 LERPNET_TRAIN_STEPS=4
# LERPNET_SCALING_N=6 LERPNET_ALGORITHM1_N=8 LERPNET_REFERENCE=4 LERPNET_REPEATS=1).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage="usage: benchmarks/multi_gpu.sh OUTDIR [train] [algorithm1]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
OUTDIR="$(realpath -m "$1")"
PARTS=("${@:2}")
[ $# -gt 1 ] || PARTS=(train algorithm1)
for part in "${PARTS[@]}"; do
  [[ "$part" == train || "$part" == algorithm1 ]] || { echo "unknown part '$part'; $usage" >&2; exit 2; }
done
PYTHON="${PYTHON:-python}"
PER_GPU_BATCH="${LERPNET_PER_GPU_BATCH:-128}"
TRAIN_STEPS="${LERPNET_TRAIN_STEPS:-300}"
TRAIN_CONFIG="${LERPNET_TRAIN_CONFIG:-configs/default.py}"
TRAIN_LAUNCH="${LERPNET_TRAIN_LAUNCH:-processes}"
SCALING_N="${LERPNET_SCALING_N:-2000}"
ALGORITHM1_N="${LERPNET_ALGORITHM1_N:-10000}"
REFERENCE="${LERPNET_REFERENCE:-755}"
REPEATS="${LERPNET_REPEATS:-2}"
TIMEOUT="${LERPNET_TIMEOUT:-3600}"
for value in "$PER_GPU_BATCH" "$TRAIN_STEPS" "$SCALING_N" "$ALGORITHM1_N" "$REFERENCE" "$REPEATS" "$TIMEOUT"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "LERPNET_* sizes must be whole numbers > 0, got '$value'" >&2; exit 2; }
done
[[ "$TRAIN_LAUNCH" == processes || "$TRAIN_LAUNCH" == single ]] \
  || { echo "LERPNET_TRAIN_LAUNCH must be processes or single, got '$TRAIN_LAUNCH'" >&2; exit 2; }
if [ -n "${LERPNET_RUN:-}" ]; then
  [ -f "$LERPNET_RUN/config.json" ] || { echo "LERPNET_RUN=$LERPNET_RUN holds no training run (no config.json)" >&2; exit 2; }
  LERPNET_RUN="$(realpath "$LERPNET_RUN")"
fi

export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # experiments/ and benchmarks/ are not installed
read -r PLATFORM AVAILABLE < <("$PYTHON" -c 'import jax; print(jax.default_backend(), jax.device_count())' 2>/dev/null) \
  || { echo "cannot import jax with $PYTHON: install the package first (pip install -e .[cuda])" >&2; exit 2; }
[ "$PLATFORM" != cpu ] || { echo "warning: jax sees no GPU; forced CPU host devices stand in for GPUs" >&2; AVAILABLE=1024; }
COUNTS=()
for k in ${LERPNET_GPUS:-1 2 4 8}; do
  [[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "LERPNET_GPUS must list GPU counts, got '$k'" >&2; exit 2; }
  [ "$k" -le "$AVAILABLE" ] && COUNTS+=("$k")
done
[ ${#COUNTS[@]} -gt 0 ] || { echo "none of LERPNET_GPUS='${LERPNET_GPUS:-1 2 4 8}' fits the $AVAILABLE GPUs here" >&2; exit 2; }
LARGEST="${COUNTS[-1]}"
FAILED=0
mkdir -p "$OUTDIR/logs" || exit 2
cd "$OUTDIR"

devices() {  # COUNT LAUNCH K: the environment of process K of a run on COUNT GPUs
  local count=$1 launch=$2 k=$3
  if [ "$PLATFORM" = cpu ]; then
    echo "JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=$([ "$launch" = single ] && echo "$count" || echo 1)"
  elif [ "$launch" = single ]; then
    echo "CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((count - 1)))"
  else
    echo "JAX_LOCAL_DEVICE_IDS=$k"
  fi
}

launch() {  # NAME COUNT LAUNCH COMMAND...: COUNT GPUs as one process per GPU (processes) or one (single)
  local name=$1 count=$2 how=$3 processes=1 port k start status=0 pids=(); shift 3
  [ "$count" -gt 1 ] || how=single  # one GPU is one process either way
  [ "$how" = single ] || processes=$count
  port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  start=$(date +%s)
  for ((k = 0; k < processes; k++)); do
    local log="logs/${name}_process$k.log"
    echo "+ ${*//$ROOT\//}" > "$log"
    # shellcheck disable=SC2046  # the device variables are words on purpose
    env $(devices "$count" "$how" "$k") LERPNET_COORDINATOR="127.0.0.1:$port" LERPNET_NUM_PROCESSES="$processes" \
      LERPNET_PROCESS_ID="$k" timeout -s INT -k 30 "$TIMEOUT" "$@" >> "$log" 2>&1 &
    pids+=($!)
  done
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}"
    local code=$?
    echo "exit status $code after $(( $(date +%s) - start )) s (limit $TIMEOUT s)" >> "logs/${name}_process$k.log"
    [ $code -eq 0 ] || status=$code
  done
  WALL_S=$(( $(date +%s) - start ))
  tail -n 2 "logs/${name}_process0.log"
  [ $status -eq 0 ] || { echo "$name failed (exit status $status): see OUTDIR/logs/${name}_process*.log" >&2; FAILED=$((FAILED + 1)); }
  return $status
}

part_train() {
  local k name
  for k in "${COUNTS[@]}"; do
    name="train_gpus${k}_$TRAIN_LAUNCH"
    launch "$name" "$k" "$TRAIN_LAUNCH" "$PYTHON" -m experiments.train --config="$ROOT/$TRAIN_CONFIG" \
      --workdir="runs/$name" --config.train.batch_size=$((k * PER_GPU_BATCH)) --config.train.num_steps="$TRAIN_STEPS" \
      --config.train.log_every=$(( (TRAIN_STEPS + 9) / 10 )) --config.train.eval_every="$TRAIN_STEPS" \
      --config.train.checkpoint_every="$TRAIN_STEPS" --config.train.progress=False || continue
    mkdir -p "train/gpus${k}_$TRAIN_LAUNCH"
    printf '{"gpus": %d, "processes": %d, "launch": "%s", "run": "runs/%s", "wall_s": %d}\n' "$k" \
      "$([ "$TRAIN_LAUNCH" = single ] && echo 1 || echo "$k")" "$TRAIN_LAUNCH" "$name" "$WALL_S" \
      > "train/gpus${k}_$TRAIN_LAUNCH/launch.json"
  done
}

part_algorithm1() {
  local run="${LERPNET_RUN:-runs/train_gpus${LARGEST}_$TRAIN_LAUNCH}" k n how runs=()
  [ -f "$run/config.json" ] || run=""  # no trained run: the study's model, initialised
  for k in "${COUNTS[@]}"; do runs+=("$SCALING_N:$k:single"); done
  runs+=("$ALGORITHM1_N:$LARGEST:single" "$ALGORITHM1_N:$LARGEST:processes")
  mkdir -p algorithm1
  for spec in "${runs[@]}"; do
    IFS=: read -r n k how <<< "$spec"
    launch "algorithm1_n${n}_gpus${k}_$how" "$k" "$how" "$PYTHON" -m benchmarks.multi_gpu --part=algorithm1 \
      --run="$run" --num_shapes="$n" --reference="$REFERENCE" --repeats="$REPEATS" \
      --workdir="runs/algorithm1_n${n}_gpus${k}_$how" --out="algorithm1/n${n}_gpus${k}_$how.json"
  done
}

for part in "${PARTS[@]}"; do
  echo "== $part"
  "part_$part"
done
"$PYTHON" -m benchmarks.multi_gpu --part=tables --outdir="$OUTDIR" > logs/tables.log 2>&1 \
  || { echo "the tables failed: see OUTDIR/logs/tables.log" >&2; FAILED=$((FAILED + 1)); }
for table in train/scaling.md algorithm1/scaling.md; do
  [ ! -f "$table" ] || { echo "== $table"; cat "$table"; }
done
exit $FAILED
