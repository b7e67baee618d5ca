"""Model speed benchmark: lerpnet vs the same network in PyTorch, and the fused interpolation decoder.

Command (GPU machine; torch is measured when importable):
    python -m experiments.bench_model --config=configs/bench_model.py --output_dir=results/perf
Smoke variant (CPU, seconds; what tests/test_bench_model.py runs):
    python -m experiments.bench_model --config=configs/bench_model.py:smoke --output_dir=/tmp/bench
Results: <output_dir>/<device>/bench_model.{json,csv,md}, rewritten after every part. On an H100 the
full run takes about 4 minutes (run 6: 248 s, every part; the launch sweep, torch.compile and
layers stop once `time_budget_s` is spent). Expected there (run 6,
results/perf/README.md): training 41k shapes/s float32 (1.27x the best PyTorch), decoding 315k
float32 (1.60x PyTorch eager, 1.44x torch.compile), the fused kernel 0.9M shapes/s, Algorithm 1 at
N = 50 in 31 ms (13 ms decoding each distinct shape once).
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # most important first: a run cut off at its time limit keeps the parts it finished
    # the launch sweep comes first: Algorithm 1 ("fused") then runs on the fastest launch it measured
    cfg.parts = ("ceilings", "pallas_sweep", "fused", "train", "decode", "torch", "torch_compile", "layers")
    cfg.train_batch = 128
    cfg.train_steps_per_call = 10  # steps chained in one timed call
    # (implementation, dtype) of lerpnet.models to train and decode; "flax" is the plain formulation
    cfg.model_variants = (("auto", "float32"), ("auto", "bfloat16"), ("subpixel", "float32"), ("flax", "float32"))
    cfg.decode_batch = 8192
    cfg.plain_decode_batch = 1024  # the plain "flax" decoder's dilated convolutions need ~5 MB a shape
    cfg.layer_batch = 512
    # lerpnet.fast_layers.CONV_TRANSPOSE ("lax", the plain form, spends minutes in cuDNN autotuning)
    cfg.layer_formulations = ("subpixel", "parity")
    cfg.layer_dtypes = ("float32", "bfloat16")
    cfg.fused_n = (50, 200)  # Algorithm 1 sizes: N^2 pairs x `steps` interpolants
    cfg.steps = 11
    cfg.fused_backends = ("pallas", "xla")
    cfg.xla_chunk = 256  # pairs per lax.map step of the xla backend
    cfg.xla_max_n = 50  # the xla backend is timed up to this N only (it is the slower one)
    # the launch for Algorithm 1 when no sweep ran: the fastest of the H100 sweep (run 6, results/perf/)
    cfg.pallas = ml_collections.ConfigDict(dict(programs=528, rows=4, up1_rows=8, num_warps=4, split=1, pipelined=True))
    # launch shapes timed at N = fused_n[0], decode only. Smaller up2 slabs (rows) and up1 slabs (up1_rows)
    # shrink the accumulators: fewer registers per thread, more programs resident per SM
    cfg.pallas_sweep = tuple(
        dict(programs=p, rows=r, up1_rows=u, num_warps=w, split=1, pipelined=True)
        for p, r, u, w in [(528, 4, 8, 4), (528, 2, 4, 4), (528, 2, 2, 4), (528, 1, 2, 4), (792, 2, 2, 4),
                           (1056, 2, 2, 4), (1056, 1, 1, 4), (792, 1, 1, 4), (528, 4, 4, 8)])
    cfg.check_n = 13  # fused outputs compared with the unfused reference on N = check_n (uneven items)
    cfg.matmul_size = 8192
    cfg.copy_bytes = 1 << 30
    cfg.repeats = 5
    cfg.warmup = 1
    cfg.pos_weight = 10.0
    cfg.learning_rate = 1e-3
    cfg.occupancy = 0.05  # random training voxels at about chairs' occupancy
    cfg.time_budget_s = 280.0  # the sweep, torch.compile and layers stop once this much wall time is spent
    if variant == "smoke":
        cfg.parts = ("ceilings", "fused", "train", "decode", "torch", "layers")
        cfg.train_batch = 2
        cfg.train_steps_per_call = 2
        cfg.model_variants = (("subpixel", "float32"),)
        cfg.decode_batch = cfg.plain_decode_batch = 4
        cfg.layer_batch = 1
        cfg.layer_formulations = ("parity",)
        cfg.layer_dtypes = ("float32",)
        cfg.fused_n = (3,)
        cfg.steps = 3
        cfg.fused_backends = ("xla",)
        cfg.xla_chunk = 4
        cfg.check_n = 3
        cfg.matmul_size = 128
        cfg.copy_bytes = 1 << 16
        cfg.repeats = 2
        cfg.warmup = 1
    elif variant == "sweep":  # the stage ablation, decoder forms and layer forms (no torch)
        cfg.parts = ("ceilings", "pallas_sweep", "decode", "layers")
        cfg.time_budget_s = 420.0
        cfg.model_variants = (("subpixel", "float32"), ("auto", "float32"), ("subpixel", "bfloat16"),
                              ("auto", "bfloat16"))
        cfg.pallas_sweep = tuple(dict(cfg.pallas) | dict(stages=st) for st in (("up1", "up2"), ("up1",), ("up2",), ()))
    elif variant:
        raise ValueError(f"unknown bench_model variant {variant!r} (known: '', 'smoke', 'sweep')")
    return cfg
