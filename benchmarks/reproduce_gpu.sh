#!/usr/bin/env bash
# The GPU results of results/, reproduced on one CUDA machine: benchmarks/reproduce_gpu.sh OUTDIR [PART ...]
#
# Needs the package with its CUDA and test extras (`pip install -e .[cuda,dev]`; add `.[bench]` for
# the PyTorch rows of the model benchmark, and Nsight Compute's `ncu` on PATH for `profile`), run
# from anywhere. `train` and `interpolate` read the ModelNet10 chair tarball of 3D ShapeNets
# (3dshapenets_chair_train_vox30.tar.gz) from LERPNET_DATA. OUTDIR is laid out like results/:
#
#   tests        OUTDIR/tests/ops.log                the compiled GPU suites of both ops (pytest tests/ops -rA)
#   train        OUTDIR/train/                       experiments.train on configs/modelnet_chairs.py (README.md,
#                                                    run.json, metrics, curves); the run itself: OUTDIR/runs/modelnet_chairs
#   interpolate  OUTDIR/interpolate/{n50,n200,n1000} experiments.interpolate :modelnet_study (N = 50, timed),
#                                                    :modelnet_chairs (N = 200, figures), :modelnet_wall (N = 1000, timed)
#                                                    on that run (LERPNET_RUN=DIR uses another trained run)
#   bench        OUTDIR/bench_model/<device>/        benchmarks.bench_model: training and decoding against PyTorch
#   kernels      OUTDIR/bench_interpolation/<device>/ benchmarks.bench_interpolation: the lerp kernels' launches
#   sweep        OUTDIR/sweep_sizes/<device>/        benchmarks.sweep_sizes: the study's size sweep
#   profile      OUTDIR/profile/                     Nsight Compute on one lerp_decode launch (N = 50), both decoder widths
#
# No PART: all of them, in this order. Each command of a part is stopped after LERPNET_TIMEOUT_<PART>
# seconds (e.g. LERPNET_TIMEOUT_TRAIN=1800; defaults below). Every command's output goes to a log
# beside its results. A failing part is reported and the next one runs; the exit status is the
# number of parts that failed. Bulky intermediates (checkpoints, block files, pairs.npz, the
# compilation cache) stay in OUTDIR/runs/; everything else in OUTDIR is what results/ holds.
set -uo pipefail

ALL_PARTS=(tests train interpolate bench kernels sweep profile)
usage="usage: benchmarks/reproduce_gpu.sh OUTDIR [${ALL_PARTS[*]}]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="$(realpath -m "$1")"
shift
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=("${ALL_PARTS[@]}")
PYTHON="${PYTHON:-python}"
RUN="${LERPNET_RUN:-$OUTDIR/runs/modelnet_chairs}"

# Every argument is checked before any work starts.
for part in "${PARTS[@]}"; do
  [[ " ${ALL_PARTS[*]} " == *" $part "* ]] || { echo "unknown part '$part'; $usage" >&2; exit 2; }
done
needs() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
if needs train || needs interpolate; then
  [ -n "${LERPNET_DATA:-}" ] || { echo "LERPNET_DATA is not set: point it at 3dshapenets_chair_train_vox30.tar.gz" >&2; exit 2; }
  [ -e "$LERPNET_DATA" ] || { echo "LERPNET_DATA=$LERPNET_DATA does not exist" >&2; exit 2; }
  LERPNET_DATA="$(cd "$(dirname "$LERPNET_DATA")" && pwd)/$(basename "$LERPNET_DATA")"
fi
if needs interpolate && ! needs train && [ ! -f "$RUN/config.json" ]; then
  echo "interpolate needs a trained run: $RUN has no config.json (add the train part, or set LERPNET_RUN)" >&2; exit 2
fi
if needs profile && ! command -v ncu >/dev/null; then
  echo "profile needs Nsight Compute's ncu on PATH" >&2; exit 2
fi

mkdir -p "$OUTDIR" || exit 2
cd "$ROOT"
export PYTHONUNBUFFERED=1
SLUG="$("$PYTHON" -c 'from lerpnet.device import device_slug; print(device_slug())' 2>/dev/null)" \
  || { echo "cannot import lerpnet with $PYTHON: install the package first (pip install -e .[cuda,dev])" >&2; exit 2; }
[ "$SLUG" != cpu ] || echo "warning: jax sees no GPU; the results will be CPU figures" >&2

logged() {  # LOG TIMEOUT_S COMMAND...: runs it with a time limit, output to LOG; ends LOG with status and wall time
  local log=$1 limit=$2 start status; shift 2
  mkdir -p "$(dirname "$log")"
  start=$(date +%s)
  echo "+ $*" > "$log"
  timeout -s INT -k 30 "$limit" "$@" >> "$log" 2>&1
  status=$?
  WALL_S=$(( $(date +%s) - start ))
  echo "exit status $status after $WALL_S s (limit $limit s)" >> "$log"
  tail -n 3 "$log"
  return $status
}

part_tests() {
  logged "$OUTDIR/tests/ops.log" "${LERPNET_TIMEOUT_TESTS:-1800}" \
    "$PYTHON" -m pytest tests/ops -q -rA -p no:cacheprovider
}

part_train() {
  local cmd=(-m experiments.train --config=configs/modelnet_chairs.py --workdir="$RUN"
             --config.data.path="$LERPNET_DATA" --config.train.progress=False) status
  logged "$OUTDIR/runs/train.log" "${LERPNET_TIMEOUT_TRAIN:-1800}" "$PYTHON" "${cmd[@]}"
  status=$?
  "$PYTHON" -m benchmarks.train_results --run="$RUN" --out="$OUTDIR/train" --exit_code=$status --wall_s="$WALL_S" \
    --log="$OUTDIR/runs/train.log" \
    --command="python -m experiments.train --config=configs/modelnet_chairs.py --workdir=runs/modelnet_chairs --config.data.path=\$LERPNET_DATA" \
    || return 1
  return $status
}

part_interpolate() {
  local variant dir failed=0
  for variant in modelnet_study:n50 modelnet_chairs:n200 modelnet_wall:n1000; do
    dir=${variant#*:}
    logged "$OUTDIR/interpolate/$dir.log" "${LERPNET_TIMEOUT_INTERPOLATE:-1200}" \
      "$PYTHON" -m experiments.interpolate --config=configs/interpolate.py:"${variant%%:*}" \
      --workdir="$OUTDIR/runs/interpolate_$dir" --config.checkpoint_dir="$RUN" --config.data_path="$LERPNET_DATA" \
      || failed=1
    # the folder without its bulk: block files and .npz arrays stay in runs/, the per-pair table is gzipped
    rm -rf "$OUTDIR/interpolate/$dir"
    mkdir -p "$OUTDIR/interpolate/$dir"
    (cd "$OUTDIR/runs/interpolate_$dir" 2>/dev/null && find . -type f ! -path './blocks/*' ! -name '*.npz' ! -name '.*' \
       -exec cp --parents {} "$OUTDIR/interpolate/$dir/" \;)
    [ ! -f "$OUTDIR/interpolate/$dir/pairs.csv" ] || gzip -f "$OUTDIR/interpolate/$dir/pairs.csv"
  done
  return $failed
}

part_bench() {
  logged "$OUTDIR/bench_model/$SLUG/bench_model.log" "${LERPNET_TIMEOUT_BENCH:-1200}" \
    "$PYTHON" -m benchmarks.bench_model --config=configs/bench_model.py --workdir="$OUTDIR/bench_model"
}

part_kernels() {
  logged "$OUTDIR/bench_interpolation/$SLUG/kernels.log" "${LERPNET_TIMEOUT_KERNELS:-600}" \
    "$PYTHON" -m benchmarks.bench_interpolation --workdir="$OUTDIR/bench_interpolation"
}

part_sweep() {
  logged "$OUTDIR/sweep_sizes/$SLUG/sweep.log" "${LERPNET_TIMEOUT_SWEEP:-900}" \
    "$PYTHON" -m benchmarks.sweep_sizes --config=configs/sweep.py --workdir="$OUTDIR/sweep_sizes"
}

part_profile() {
  # ncu replays the kernel and slows everything it attaches to, compilation included: each launch is
  # compiled first into a persistent compilation cache, so that the profiled process only loads it.
  # Command buffers are off so that the kernel is launched on its own; the clocks are left as they are.
  # One profile per decoder width: the study's (16, 32) and configs/modelnet_chairs.py's (64, 64).
  local dir="$OUTDIR/profile" limit="${LERPNET_TIMEOUT_PROFILE:-600}" features name launch failed=0
  mkdir -p "$dir"
  export XLA_FLAGS="--xla_gpu_enable_command_buffer=" JAX_COMPILATION_CACHE_DIR="$OUTDIR/runs/jax_cache" \
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
  for features in 16,32 64,64; do
    name="lerp_decode_${features/,/_}"
    launch=(-m benchmarks.profile_lerp_decode --n=50 --decoder_features="$features")
    logged "$dir/$name.compile.log" "$limit" "$PYTHON" "${launch[@]}" || { failed=1; continue; }
    logged "$dir/$name.ncu.log" "$limit" ncu --clock-control none --target-processes all \
      -k "regex:${LERPNET_PROFILE_KERNEL:-lerp_decode}" --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
      --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
      -f -o "$dir/$name" "$PYTHON" "${launch[@]}" || failed=1
    if [ -f "$dir/$name.ncu-rep" ]; then
      ncu --import "$dir/$name.ncu-rep" --page details > "$dir/$name.txt" 2>&1
    else
      echo "ncu wrote no report for decoder $features (see $dir/$name.ncu.log)" >&2; failed=1
    fi
  done
  unset XLA_FLAGS JAX_COMPILATION_CACHE_DIR JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES
  return $failed
}

failures=0
for part in "${PARTS[@]}"; do
  echo "== $part ($(date -u +%H:%M:%S) UTC)"
  if ! "part_$part"; then
    echo "== $part FAILED (its log is under $OUTDIR)" >&2
    failures=$((failures + 1))
  fi
done
echo "wrote $OUTDIR (${PARTS[*]}; $failures failed)"
exit $failures
