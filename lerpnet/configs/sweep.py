"""Size sweep of all-pairs interpolation (the study's Tables 2-3 and Figure 5, extended).

    python -m benchmarks.sweep_sizes --config=configs/sweep.py --workdir=runs/sweep_sizes

Writes <workdir>/<device>/sweep.{csv,json,md,png}: every implementation of lerpnet.ops.lerp in
float32 and bfloat16 at the study's sizes and powers of two up to N = 4096 (cells whose output
does not fit in device memory are recorded as skipped), then encode / decode / whole-program rows.
Expected on one NVIDIA H100 80GB HBM3 (jax 0.11.2; results/sweep_sizes/nvidia_h100_80gb_hbm3/):
about 2.5 minutes wall; at N = 50 every kernel is launch-bound at 11-27 us, at N = 2048 the
shared-memory kernel writes at 1.1x (float32) / 1.8x (bfloat16) XLA's rate.
Smoke variant (2 CPU cores, under a minute; what tests/test_sweep.py runs):
    python -m benchmarks.sweep_sizes --config=configs/sweep.py:smoke --workdir=/tmp/sweep
"""

import ml_collections

STUDY_SIZES = (2, 10, 20, 30, 40, 50)  # the study's Table 3 input sizes


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # the study's sizes, then powers of two; sizes whose output exceeds max_output_fraction of the
    # device's memory are recorded as skipped
    cfg.sizes = STUDY_SIZES + tuple(2**k for k in range(6, 13))
    cfg.implementations = ("mosaic_smem", "mosaic_global", "triton", "xla", "numpy")  # of lerpnet.ops.lerp
    cfg.dtypes = ("float32", "bfloat16")
    cfg.steps = 11
    cfg.warmup = 2
    cfg.repeats = 15
    cfg.numpy_repeats = 3
    cfg.numpy_max_bytes = 1 << 30  # NumPy cells writing more than this are skipped (seconds each)
    cfg.interpret_max_n = 16  # off the GPU the Pallas kernels only interpret: small N only
    cfg.loop_max_bytes = 256 << 20  # outputs up to this size are timed inside one jitted loop
    cfg.loop_inner = 50
    cfg.max_output_fraction = 0.4  # of device memory (the check and the copy need room beside it)
    cfg.copy_bytes = 1 << 30  # copy-bandwidth ceiling measured on a buffer this size
    cfg.time_budget_s = 240.0  # cells not started within this many seconds are skipped
    # The study's other rows on a freshly initialised model (timings do not depend on the weights):
    # encode N shapes, decode all N*N*steps interpolants in chunks, and the whole program.
    cfg.model_sizes = (2, 10, 20, 30, 40, 50)
    cfg.model_dtype = "float32"
    cfg.decode_chunk = 8192
    cfg.model = ml_collections.ConfigDict(dict(implementation="auto"))  # lerpnet.models.model_config overrides
    cfg.seed = 0
    if variant == "smoke":
        cfg.sizes = (2, 10, 20)
        cfg.implementations = ("mosaic_smem", "xla", "numpy")
        cfg.repeats = 3
        cfg.numpy_repeats = 2
        cfg.interpret_max_n = 10
        cfg.loop_inner = 3
        cfg.copy_bytes = 1 << 22
        cfg.model_sizes = (2,)
        cfg.decode_chunk = 32
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return cfg
