"""Size sweep of all-pairs interpolation (the study's Tables 2-3 and Figure 5, extended).

Command (GPU machine):
    python -m experiments.sweep_sizes --config=configs/sweep.py --workdir=results/sweep_sizes
Smoke variant (CPU, under a minute; what tests/test_sweep.py runs):
    python -m experiments.sweep_sizes --config=configs/sweep.py:smoke --workdir=/tmp/sweep
Writes <workdir>/<device>/sweep.{csv,json,md,png}. Expected on an H100: about 3 minutes; every
cell is timed after its compile (reported separately), cells that cannot run are recorded as skipped.
"""

import ml_collections

STUDY_SIZES = (2, 10, 20, 30, 40, 50)  # the study's Table 3 input sizes


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # the study's sizes, then powers of two; sizes whose output exceeds max_output_fraction of the
    # device's memory are recorded as skipped
    cfg.sizes = STUDY_SIZES + tuple(2**k for k in range(6, 13))
    cfg.backends = ("pallas", "pallas_global", "pallas_triton", "jnp", "numpy")
    cfg.dtypes = ("float32", "bfloat16")
    cfg.steps = 11
    cfg.warmup = 2
    cfg.repeats = 15
    cfg.numpy_repeats = 3
    cfg.numpy_max_bytes = 1 << 30  # NumPy cells writing more than this are skipped (seconds each)
    cfg.interpret_max_n = 16  # off the GPU the Pallas backends only interpret: small N only
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
        cfg.backends = ("pallas", "jnp", "numpy")
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
