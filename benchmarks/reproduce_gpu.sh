#!/usr/bin/env bash
# The GPU results of results/, reproduced on one CUDA machine: benchmarks/reproduce_gpu.sh OUTDIR [PART ...]
#
# Needs the package with its CUDA and test extras (`pip install -e .[cuda,dev]`; add `.[bench]` for
# the PyTorch rows of the model benchmark, and Nsight Compute's `ncu` on PATH for `profile`); runs
# from anywhere. `train` and `interpolate` read 3D ShapeNets' ModelNet10 chairs from LERPNET_DATA:
# the folder holding 3dshapenets_chair_train_vox30.tar.gz (or that file itself). OUTDIR is laid out
# like results/:
#
#   tests        OUTDIR/tests/gpu_suites.log          the compiled GPU suites: both ops and the all-pairs engine (pytest tests/ops tests/allpairs -rA)
#   train        OUTDIR/train/                        experiments.train on configs/modelnet_chairs.py (README.md,
#                                                     run.json, metrics, curves); the run itself: OUTDIR/runs/modelnet_chairs;
#                OUTDIR/fused_agreement/modelnet_chairs/  benchmarks.fused_agreement on that run
#   interpolate  OUTDIR/interpolate/{n50,n200,n1000}  experiments.interpolate :modelnet_study (N = 50, timed),
#                                                     :modelnet_chairs (N = 200, figures), :modelnet_wall (N = 1000, timed)
#                                                     on that run (LERPNET_RUN=DIR uses another trained run)
#   study        OUTDIR/train_study/, OUTDIR/fused_agreement/study/, OUTDIR/interpolate/n1000_study_cold_and_warm/{cold,warm_1,warm_2,warm_3}
#                                                     configs/study.py trained (the study's widths), the fused decoders
#                                                     (Triton, Mosaic GPU, XLA) checked on it, then the whole
#                                                     :modelnet_wall command on it without timed repeats, on an empty
#                                                     compilation cache, then three times on the warm one
#   bench        OUTDIR/bench_model/<device>/         benchmarks.bench_model: training and decoding against PyTorch
#   kernels      OUTDIR/bench_interpolation/<device>/ benchmarks.bench_interpolation: the lerp kernels' launches
#   sweep        OUTDIR/sweep_sizes/<device>/         benchmarks.sweep_sizes: the study's size sweep
#   profile      OUTDIR/profile/                      Nsight Compute on one lerp_decode launch (N = 50) of each kernel:
#                                                     LERPNET_PROFILES="triton:16,32 mosaic:16,32 triton:64,64" (kernel:decoder
#                                                     widths), and a jax.profiler trace of one score_pairs call at each
#                                                     of those widths (OUTDIR/profile/score_pairs/)
#
# LERPNET_INTERPOLATE_VARIANTS picks the interpolate runs ("modelnet_study:n50 modelnet_chairs:n200": the
# first two). No PART: all of them, in this order. Each command of a part is stopped after LERPNET_TIMEOUT_<PART>
# seconds (e.g. LERPNET_TIMEOUT_TRAIN=1800, LERPNET_TIMEOUT_AGREEMENT for the fused-agreement check; defaults below). Every command's output goes to
# OUTDIR/logs/ (ending with its exit status and wall time). A failing part is reported and the next
# one runs; the exit status is the number of parts that failed. The programs run inside OUTDIR, so
# the paths they record are relative to it. Bulky intermediates (checkpoints, block files,
# pairs.npz, the compilation cache) stay in OUTDIR/runs/; the other folders are what results/ holds.
set -uo pipefail

ALL_PARTS=(tests train interpolate study bench kernels sweep profile)
usage="usage: benchmarks/reproduce_gpu.sh OUTDIR [${ALL_PARTS[*]}]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTDIR="$(realpath -m "$1")"
shift
PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=("${ALL_PARTS[@]}")
PYTHON="${PYTHON:-python}"
TARBALL=3dshapenets_chair_train_vox30.tar.gz
RUN=runs/modelnet_chairs  # relative to OUTDIR
[ -z "${LERPNET_RUN:-}" ] || RUN="$(realpath -m "$LERPNET_RUN")"

# Every argument is checked before any work starts.
for part in "${PARTS[@]}"; do
  [[ " ${ALL_PARTS[*]} " == *" $part "* ]] || { echo "unknown part '$part'; $usage" >&2; exit 2; }
done
needs() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
if needs train || needs interpolate || needs study; then
  [ -n "${LERPNET_DATA:-}" ] || { echo "LERPNET_DATA is not set: point it at the folder holding $TARBALL" >&2; exit 2; }
  [ -e "$LERPNET_DATA" ] || { echo "LERPNET_DATA=$LERPNET_DATA does not exist" >&2; exit 2; }
  if [ -f "$LERPNET_DATA" ]; then  # the tarball itself: lerpnet looks for it by name in its folder
    [ "$(basename "$LERPNET_DATA")" = "$TARBALL" ] \
      || { echo "LERPNET_DATA=$LERPNET_DATA is a file not named $TARBALL: give its folder, the file named so" >&2; exit 2; }
    LERPNET_DATA="$(dirname "$LERPNET_DATA")"
  fi
  export LERPNET_DATA="$(realpath "$LERPNET_DATA")"
fi
run_dir() { case "$RUN" in /*) echo "$RUN" ;; *) echo "$OUTDIR/$RUN" ;; esac; }
if needs interpolate && ! needs train && [ ! -f "$(run_dir)/config.json" ]; then
  echo "interpolate needs a trained run: $(run_dir) has no config.json (add the train part, or set LERPNET_RUN)" >&2; exit 2
fi
if needs profile && ! command -v ncu >/dev/null; then
  echo "profile needs Nsight Compute's ncu on PATH" >&2; exit 2
fi

mkdir -p "$OUTDIR/logs" || exit 2
cd "$OUTDIR"
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # experiments/ and benchmarks/ are not installed
DEVICE="$("$PYTHON" -c 'from lerpnet.device import device_slug; print(device_slug())' 2>/dev/null)" \
  || { echo "cannot import lerpnet with $PYTHON: install the package first (pip install -e .[cuda,dev])" >&2; exit 2; }
[ "$DEVICE" != cpu ] || echo "warning: jax sees no GPU; the results will be CPU figures" >&2

logged() {  # LOG TIMEOUT_S COMMAND...: runs it with a time limit, output to LOG; ends LOG with status and wall time
  local log=$1 limit=$2 start status; shift 2
  mkdir -p "$(dirname "$log")"
  start=$(date +%s)
  echo "+ ${*//$ROOT\//}" > "$log"
  timeout -s INT -k 30 "$limit" "$@" >> "$log" 2>&1
  status=$?
  WALL_S=$(( $(date +%s) - start ))
  echo "exit status $status after $WALL_S s (limit $limit s)" >> "$log"
  tail -n 3 "$log"
  return $status
}

relative_paths() {  # DIR: the programs record absolute paths; results name them relative to OUTDIR and the checkout
  grep -rlIZ -e "$OUTDIR/" -e "$ROOT/" "$1" 2>/dev/null | xargs -0 -r sed -i -e "s#$OUTDIR/##g" -e "s#$ROOT/##g"
}

part_tests() {
  # compiling dominates: 4 pytest workers share the GPU (XLA allocating as it goes) when pytest-xdist is there
  local workers=()
  "$PYTHON" -c "import xdist" 2>/dev/null && workers=(-n 4)
  (cd "$ROOT" && XLA_PYTHON_CLIENT_PREALLOCATE=false logged "$OUTDIR/tests/gpu_suites.log" "${LERPNET_TIMEOUT_TESTS:-1800}" \
    "$PYTHON" -m pytest tests/ops tests/allpairs -q -rA -p no:cacheprovider "${workers[@]}")
}

train_and_report() {  # CONFIG RUN OUT: experiments.train on configs/CONFIG.py into RUN, its results in OUT/
  local status
  logged "logs/$3.log" "${LERPNET_TIMEOUT_TRAIN:-1800}" "$PYTHON" -m experiments.train \
    --config="$ROOT/configs/$1.py" --workdir="$2" --config.train.progress=False
  status=$?
  "$PYTHON" -m benchmarks.train_results --run="$2" --out="$3" --exit_code=$status --wall_s="$WALL_S" \
    --log="logs/$3.log" --command="python -m experiments.train --config=configs/$1.py --workdir=runs/$1" || return 1
  relative_paths "$3"
  return $status
}

agreement() {  # RUN NAME [IMPLEMENTATIONS]: the fused decoders against the float32 one on RUN's validation paths,
  # in fused_agreement/NAME/ (IMPLEMENTATIONS: fused_agreement's default, auto and xla, unless given)
  logged "logs/fused_agreement_$2.log" "${LERPNET_TIMEOUT_AGREEMENT:-600}" "$PYTHON" -m benchmarks.fused_agreement \
    --run="$1" --workdir="fused_agreement/$2" ${3:+--implementations="$3"} || return
  cp "$1/threshold.json" "fused_agreement/$2/"
  relative_paths "fused_agreement/$2"
}

part_train() {
  train_and_report modelnet_chairs "$RUN" train && agreement "$RUN" modelnet_chairs
}

part_interpolate() {
  local variant dir failed=0
  for variant in ${LERPNET_INTERPOLATE_VARIANTS:-modelnet_study:n50 modelnet_chairs:n200 modelnet_wall:n1000}; do
    dir=${variant#*:}
    logged "logs/interpolate_$dir.log" "${LERPNET_TIMEOUT_INTERPOLATE:-1200}" \
      "$PYTHON" -m experiments.interpolate --config="$ROOT/configs/interpolate.py:${variant%%:*}" \
      --workdir="runs/interpolate_$dir" --config.checkpoint_dir="$RUN" --config.progress=False || failed=1
    keep_interpolation "$dir"
  done
  return $failed
}

keep_interpolation() {  # DIR: runs/interpolate_DIR without its bulk, as interpolate/DIR: block files, .npz arrays
  # and the exported meshes stay in runs/ (the exports' strips, animations and .binvox voxel files come
  # along); the per-pair table is gzipped
  rm -rf "interpolate/$1"
  mkdir -p "interpolate/$1"
  (cd "runs/interpolate_$1" 2>/dev/null && find . -type f ! -path './blocks/*' ! -name '*.npz' ! -name '.*' \
     ! \( -path './exports/*' ! -name '*.gif' ! -name '*.png' ! -name '*.binvox' \) -exec cp --parents {} "$OUTDIR/interpolate/$1/" \;)
  relative_paths "interpolate/$1"
  [ ! -f "interpolate/$1/pairs.csv" ] || gzip -f "interpolate/$1/pairs.csv"
}

part_study() {
  # the study's widths (16, 32) end to end: configs/study.py trained, then the whole :modelnet_wall command
  # (N = 1000, every ordered pair) without timed repeats, first on an empty compilation cache, then 3 times warm
  local failed=0 run=runs/study pass dir
  train_and_report study "$run" train_study || return
  agreement "$run" study triton,mosaic,xla || failed=1  # both kernels cover the study's widths
  rm -rf runs/study_cache
  for pass in cold warm_1 warm_2 warm_3; do
    dir=n1000_study_cold_and_warm/$pass
    LERPNET_CACHE="$OUTDIR/runs/study_cache" logged "logs/interpolate_n1000_study_$pass.log" \
      "${LERPNET_TIMEOUT_INTERPOLATE:-1200}" "$PYTHON" -m experiments.interpolate \
      --config="$ROOT/configs/interpolate.py:modelnet_wall" --workdir="runs/interpolate_$dir" \
      --config.checkpoint_dir="$run" --config.progress=False --config.timing.repeats=0 || failed=1
    keep_interpolation "$dir"
  done
  return $failed
}

part_bench() {
  logged logs/bench_model.log "${LERPNET_TIMEOUT_BENCH:-1200}" \
    "$PYTHON" -m benchmarks.bench_model --config="$ROOT/configs/bench_model.py" --workdir=bench_model
}

part_kernels() {
  logged logs/bench_interpolation.log "${LERPNET_TIMEOUT_KERNELS:-600}" \
    "$PYTHON" -m benchmarks.bench_interpolation --workdir=bench_interpolation
}

part_sweep() {
  logged logs/sweep_sizes.log "${LERPNET_TIMEOUT_SWEEP:-900}" \
    "$PYTHON" -m benchmarks.sweep_sizes --config="$ROOT/configs/sweep.py" --workdir=sweep_sizes
}

part_profile() {
  # ncu replays the kernel and slows everything it attaches to, compilation included: each launch is
  # compiled first into a persistent compilation cache, so that the profiled process only loads it.
  # Command buffers are off so that the kernel is launched on its own; the clocks are left as they are.
  # One profile per kernel and decoder width: the study's (16, 32) and configs/modelnet_chairs.py's (64, 64),
  # which the Mosaic GPU kernel does not cover (its shared memory).
  local limit="${LERPNET_TIMEOUT_PROFILE:-600}" profiles="${LERPNET_PROFILES:-triton:16,32 mosaic:16,32 triton:64,64}"
  local profile impl features name launch failed=0
  mkdir -p profile
  export XLA_FLAGS="--xla_gpu_enable_command_buffer=" JAX_COMPILATION_CACHE_DIR="$OUTDIR/runs/jax_cache" \
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
  for profile in $profiles; do
    impl="${profile%%:*}" features="${profile#*:}"
    name="lerp_decode_${features/,/_}"
    [ "$impl" = triton ] || name="lerp_decode_${impl}_${features/,/_}"
    launch=(-m benchmarks.profile_lerp_decode --n=50 --implementation="$impl" --decoder_features="$features")
    logged "logs/profile_$name.log" "$limit" "$PYTHON" "${launch[@]}" || { failed=1; continue; }
    logged "logs/profile_$name.ncu.log" "$limit" ncu --clock-control none --target-processes all \
      -k "regex:${LERPNET_PROFILE_KERNEL:-lerp_decode}" --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
      --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section InstructionStats \
      -f -o "profile/$name" "$PYTHON" "${launch[@]}" || failed=1
    if [ -f "profile/$name.ncu-rep" ]; then
      ncu --import "profile/$name.ncu-rep" --page details > "profile/$name.txt" 2>&1
    else
      echo "ncu wrote no report for $impl at decoder $features (see $OUTDIR/logs/profile_$name.ncu.log)" >&2; failed=1
    fi
  done
  unset XLA_FLAGS JAX_COMPILATION_CACHE_DIR JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES
  # where one score_pairs call (N = 50, every ordered pair) spends its time: a jax.profiler trace, default flags
  for features in $(for profile in $profiles; do echo "${profile#*:}"; done | sort -u); do
    logged "logs/profile_score_pairs_${features/,/_}.log" "$limit" "$PYTHON" -m benchmarks.profile_score_pairs \
      --n=50 --decoder_features="$features" --out=profile/score_pairs --trace_dir="runs/score_pairs_trace_${features/,/_}" \
      || failed=1
  done
  return $failed
}

failures=0
for part in "${PARTS[@]}"; do
  echo "== $part ($(date -u +%H:%M:%S) UTC)"
  if ! "part_$part"; then
    echo "== $part FAILED (its log is in $OUTDIR/logs/)" >&2
    failures=$((failures + 1))
  fi
done
echo "wrote $OUTDIR (${PARTS[*]}; $failures failed)"
exit $failures
