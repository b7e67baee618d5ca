"""Model speed benchmark: lerpnet against the same network in PyTorch, and Algorithm 1 through lerp_decode.

    python -m benchmarks.bench_model --config=configs/bench_model.py --workdir=runs/bench_model

On a GPU, with torch importable for the PyTorch rows (`pip install -e .[bench]`). Writes
<workdir>/<device>/bench_model.{json,csv,md}, rewritten after every part. Expected on one NVIDIA
H100 80GB HBM3 (jax 0.11.2, torch 2.11; results/bench_model/): about 4 minutes wall (the launch
sweep, torch.compile and the layer forms stop once `time_budget_s` is spent); training 41k shapes/s
float32 (1.27x the best PyTorch), decoding 315k float32 (1.60x PyTorch eager, 1.44x torch.compile),
the Triton lerp_decode kernel 0.9M shapes/s with the study's widths, Algorithm 1 at N = 50 in 31 ms
(13 ms decoding each distinct shape once). One NVIDIA H200 at the (64, 64) decoder
(`--config.decoder_widths="((64,64),)"`): the launch sweep 16 launches, 62.7 ms for the fastest (every
ordered pair at N = 50). Algorithm 1 end to end (`score_pairs`) with the default implementations
(`--config.implementations="('auto',)"`: the Mosaic kernel at the study's widths, the Triton kernel at
(64, 64)), latest runs on H100s, one width a run: at the study's widths 9.20 ms (N = 50) and 1.825 s
(N = 1000, 29.3x PyTorch's best form in the same run, torch.compile max-autotune float32;
results/bench_model/nvidia_h100_auto_torch_compile/), at (64, 64) 29.1 ms and 10.60 s (7.1x PyTorch's best
eager form; nvidia_h100_64wide_auto/); N = 5000 at the study's widths 50.35 s on an H200
(nvidia_h200_up2_d_taps/); at (64, 64) N = 1000 on another H100, 6.6x torch.compile's best form
(nvidia_h100_64wide_torch_compile/).
Smoke variant (2 CPU cores, about a minute; what tests/test_benchmarks.py runs):
    python -m benchmarks.bench_model --config=configs/bench_model.py:smoke --workdir=/tmp/bench
"""

import ml_collections


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict()
    # most important first: a run cut off at its time limit keeps the parts it finished; the launch
    # sweep comes first because Algorithm 1 then runs on the fastest launch it measured
    cfg.parts = ("ceilings", "launch_sweep", "algorithm1", "train", "decode", "torch", "torch_compile", "layers")
    cfg.train_batch = 128
    cfg.train_steps_per_call = 10  # steps chained in one timed call
    # (implementation, dtype) of lerpnet.models to train and decode; "flax" is the plain formulation
    cfg.model_variants = (("auto", "float32"), ("auto", "bfloat16"), ("subpixel", "float32"), ("flax", "float32"))
    cfg.decode_batch = 8192
    cfg.plain_decode_batch = 1024  # the plain "flax" decoder's dilated convolutions need ~5 MB a shape
    cfg.layer_batch = 512
    # benchmarks.fast_layers.CONV_TRANSPOSE ("lax", the plain form, spends minutes in cuDNN autotuning)
    cfg.layer_formulations = ("subpixel", "parity")
    cfg.layer_dtypes = ("float32", "bfloat16")
    # Algorithm 1: N^2 pairs x `steps` interpolants, for each decoder width (the study's, which
    # configs/modelnet_chairs.py has, and its :wide_decoder's) and each lerp_decode implementation ("auto": the one a researcher's
    # call runs at that width, timed under its name)
    cfg.algorithm1_n = (50, 200)
    cfg.steps = 11
    cfg.decoder_widths = ((16, 32), (64, 64))
    cfg.implementations = ("triton", "xla")
    # larger N through score_pairs only: (N, C0, C1, warm-up calls, timed calls); a single call at N = 5000
    # (275 M decoded shapes) takes minutes, its stream_s (compiling excluded) is reported beside it
    cfg.end_to_end = ((1000, 16, 32, 1, 3), (1000, 64, 64, 1, 2), (5000, 16, 32, 0, 1))
    cfg.end_to_end_implementation = "auto"  # the lerp_decode implementation score_pairs runs there (auto: the default)
    cfg.max_n = ml_collections.ConfigDict(dict(xla=50))  # an implementation is timed up to this N only
    cfg.reference_shapes = 755  # the training set novelty is scored against (ModelNet's 755 training chairs)
    # the launches when no sweep ran: TritonLaunch fields (empty: the kernel's measured default for
    # the model's widths, lerpnet.ops.lerp_decode.triton.default_launch) and XlaLaunch fields
    cfg.triton_launch = ml_collections.ConfigDict()
    cfg.xla_launch = ml_collections.ConfigDict(dict(chunk=256))
    # Triton launches timed for each decoder width at N = algorithm1_n[0], decode only. Smaller up2
    # slabs (rows) and up1 slabs (up1_rows) shrink the accumulators: fewer registers per thread,
    # more programs resident per SM; at (64, 64) channels an up1 slab of 8 rows holds 256 float32
    # accumulators a thread at 4 warps, so the sweep also tries 8 warps and fewer programs
    cfg.triton_sweep = tuple(
        dict(programs=p, rows=r, up1_rows=u, num_warps=w, num_stages=s)
        for p, r, u, w, s in [(528, 4, 8, 4, 1), (528, 4, 4, 4, 1), (528, 4, 2, 4, 1), (528, 2, 4, 4, 1),
                              (528, 2, 2, 4, 1), (528, 1, 2, 4, 1), (792, 2, 2, 4, 1), (1056, 2, 2, 4, 1),
                              (528, 4, 8, 8, 1), (528, 4, 4, 8, 1), (264, 4, 8, 8, 1), (264, 8, 8, 8, 1),
                              (396, 4, 4, 4, 1), (264, 4, 4, 4, 1), (528, 4, 4, 4, 2), (528, 2, 2, 8, 1)])
    cfg.max_bit_mismatch = 5e-3  # a swept launch differing from the XLA implementation on more bits is not chosen
    cfg.check_n = 13  # each implementation against the unfused reference on N = check_n (uneven items)
    cfg.matmul_size = 8192
    cfg.copy_bytes = 1 << 30
    cfg.repeats = 5
    cfg.warmup = 1
    cfg.pos_weight = 10.0
    cfg.learning_rate = 1e-3
    cfg.occupancy = 0.05  # random training voxels at about chairs' occupancy
    # jax's share of GPU memory when the PyTorch parts run in the same process (XLA_PYTHON_CLIENT_MEM_FRACTION,
    # unless set): Algorithm 1's blocks take 8 GiB; at jax's default 0.75 torch.compile's bf16 graphs ran out
    cfg.jax_memory_fraction = 0.5
    cfg.time_budget_s = 280.0  # the sweep, torch.compile and layers stop once this much wall time is spent
    if variant == "smoke":
        cfg.parts = ("ceilings", "algorithm1", "train", "decode", "torch", "layers")
        cfg.train_batch = 2
        cfg.train_steps_per_call = 2
        cfg.model_variants = (("subpixel", "float32"),)
        cfg.decode_batch = cfg.plain_decode_batch = 4
        cfg.layer_batch = 1
        cfg.layer_formulations = ("parity",)
        cfg.layer_dtypes = ("float32",)
        cfg.algorithm1_n = (3,)
        cfg.steps = 3
        cfg.decoder_widths = ((16, 32),)
        cfg.implementations = ("auto", "xla")  # on the CPU "auto" is "xla": timed once
        cfg.end_to_end = ((5, 16, 32, 0, 1),)
        cfg.reference_shapes = 4
        cfg.xla_launch.chunk = 4
        cfg.check_n = 3
        cfg.matmul_size = 128
        cfg.copy_bytes = 1 << 16
        cfg.repeats = 2
        cfg.warmup = 1
    elif variant:
        raise ValueError(f"unknown bench_model variant {variant!r} (known: '', 'smoke')")
    return cfg
