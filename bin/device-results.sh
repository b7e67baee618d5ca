#!/usr/bin/env bash
# The GPU results of this repository, as run on the lent H100 (this workplace's `device` tool, with
# carry=[".whl", ".carry"]); each part leaves a tarball under $OUT that is unpacked into results/.
# Several parts may follow each other in one call; `wall` reuses the run that `train_and_interpolate` left.
#   bash bin/device-results.sh train_and_interpolate   # ModelNet training, then Algorithm 1 at N=50/200
#   bash bin/device-results.sh wall                    # Algorithm 1 at N=1000, timed
#   bash bin/device-results.sh bench                   # compiled fused-decoder tests, model benchmark
#   bash bin/device-results.sh bench_sweep             # bench_model's :sweep variant (stage ablation, decoder and layer forms)
#   bash bin/device-results.sh sweep                   # interpolation size sweep (results/sweep_sizes/)
#   bash bin/device-results.sh profile                 # Nsight Compute profile of the fused decoder kernel (LAUNCH=...)
set -uo pipefail
source bin/device-env.sh
mkdir -p runs
RUN=runs/modelnet_chairs
interp() {  # variant workdir [flags...]
  local variant=$1 dir=$2; shift 2
  python3 -m experiments.interpolate --config=configs/interpolate.py:"$variant" --workdir="$dir" \
    --config.checkpoint_dir="$RUN" "$@" 2>&1 | grep -v "^[IW]1" | tail -15
}
collect() {  # tarball dir...
  local name=$1; shift
  tar czf "$OUT/$name.tgz" --exclude='blocks' --exclude='*.npz' "$@" 2>/dev/null
  ls -la "$OUT/$name.tgz"
}
for part in "${@:?name the parts to run}"; do
case "$part" in
  train_and_interpolate)
    rm -rf "$RUN" runs/train_out runs/interp_n50 runs/interp_n200; mkdir -p runs/train_out
    OUT=runs/train_out SKIP_ENV=1 LIMIT="${TRAIN_LIMIT:-330}" bash results/train/run_gpu.sh | tail -30
    collect train runs/train_out
    interp modelnet_study runs/interp_n50
    interp modelnet_chairs runs/interp_n200
    collect interp runs/interp_n50 runs/interp_n200
    ;;
  wall)
    interp modelnet_wall runs/interp_n1000 --config.timing.repeats=1
    collect wall runs/interp_n1000
    ;;
  bench)
    timeout "${TESTS_LIMIT:-150}" python3 -m pytest tests/test_fused_decoder.py -q -p no:cacheprovider -rA \
      2>&1 | tee "$OUT/gpu_tests_fused.log" | tail -4
    timeout "${BENCH_LIMIT:-330}" python3 -m experiments.bench_model --config=configs/bench_model.py --output_dir=runs/perf \
      > runs/perf_bench.log 2>&1
    cp runs/perf_bench.log runs/perf/ 2>/dev/null
    collect perf runs/perf
    ;;
  bench_sweep)  # the fused kernel's stage ablation, decoder forms, layer forms
    timeout "${BENCH_LIMIT:-330}" python3 -m experiments.bench_model --config=configs/bench_model.py:sweep \
      --output_dir=runs/perf_sweep > runs/perf_sweep.log 2>&1; tail -2 runs/perf_sweep.log
    cp runs/perf_sweep.log runs/perf_sweep/ 2>/dev/null
    collect perf_sweep runs/perf_sweep
    ;;
  sweep)
    rm -rf runs/sweep
    timeout "${SWEEP_LIMIT:-400}" python3 -m experiments.sweep_sizes --config=configs/sweep.py --workdir=runs/sweep \
      > runs/sweep.log 2>&1; tail -3 runs/sweep.log
    cp runs/sweep.log runs/sweep/*/ 2>/dev/null
    collect sweep runs/sweep
    ;;
  profile)  # ncu's main sections for one launch of the fused kernel ($LAUNCH), Algorithm 1's decode at N=50.
            # Compiled first into a persistent cache so that ncu sees no compile, and --clock-control none
            # (what ran here in run 5; a plain `ncu python3 ...` segfaulted attaching to jax in run 7)
    rm -rf runs/profile; mkdir -p runs/profile
    launch=${LAUNCH:-programs=528,rows=4,up1_rows=8,num_warps=4}
    export XLA_FLAGS=--xla_gpu_enable_command_buffer= JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache \
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
    python3 bin/compile_fused.py "$launch" 50 2>&1 | grep -v "^[IW]1"
    timeout "${PROFILE_LIMIT:-150}" ncu --clock-control none --target-processes all -k regex:lerp_decode \
      --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
      --section LaunchStats --section ComputeWorkloadAnalysis --section WarpStateStats -f -o runs/profile/fused_decoder \
      python3 bin/compile_fused.py "$launch" 50 > runs/profile/ncu.log 2>&1; tail -3 runs/profile/ncu.log
    unset XLA_FLAGS JAX_COMPILATION_CACHE_DIR
    if [ -f runs/profile/fused_decoder.ncu-rep ]; then
      ncu --import runs/profile/fused_decoder.ncu-rep --page details > runs/profile/details.txt 2>&1
      grep -E "Throughput|Hit Rate|Occupancy|Registers|Duration|Block Limit|Warp Cycles|Issued" runs/profile/details.txt | head -40
    fi
    collect profile runs/profile
    ;;
esac
done
