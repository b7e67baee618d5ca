"""Benchmark lerpnet's training step and decoding against the same network in PyTorch.

    python -m benchmarks.bench_model --config=configs/bench_model.py --workdir=runs/bench_model

Measures in one run on one device: the bf16 matrix-multiply and copy ceilings; `lerpnet.train`'s
training step (batch `train_batch`) and `Autoencoder.decode` per model variant and dtype; Algorithm 1
through `lerpnet.ops.lerp_decode` (encode N shapes, all N^2 pairs x `steps` interpolants, threshold,
bit-pack; every ordered pair decoded, then each distinct shape once) and end to end through the
all-pairs program's function `lerpnet.allpairs.score_pairs` (to every path's scores), for each
decoder width and implementation, after a sweep of the Triton kernel's launches; the transposed convolution
formulations layer by layer; and PyTorch (eager, then torch.compile) when torch sees a GPU. Each
figure is the median of `repeats` timed calls after warm-up, blocked until ready. Rows give
shapes/s, useful TFLOP/s (FLOPs the network needs per shape, not what a formulation executes), the
fraction of the measured bf16 matmul ceiling and the ratio to the best PyTorch figure for the same
task and decoder width (its fastest form and dtype). Writes <workdir>/<device>/bench_model.{json,csv,md} after every part.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import pathlib
import statistics
import time
import traceback

import jax
import jax.numpy as jnp
from absl import app, flags, logging
from ml_collections import config_flags
from tqdm import tqdm

from benchmarks import fast_layers
from benchmarks.timing import bf16_matmul_rate, copy_bandwidth
from lerpnet import losses, models, steps, train
from lerpnet.allpairs import score_pairs
from lerpnet.allpairs.shapes import pair_list
from lerpnet.bitpack import pack_voxels
from lerpnet.device import device_info, device_slug
from lerpnet.ops.lerp_decode import (IMPLEMENTATIONS, TritonLaunch, XlaLaunch, lerp_decode,
                                     lerp_decode_all_pairs)
from lerpnet.ops.lerp_decode.api import resolve_implementation, resolve_launch, unknown_implementations
from lerpnet.tables import write_table
from lerpnet.timing import Timing, time_calls



def model_flops(cfg) -> dict[str, float]:
    """Multiply-adds x 2 per shape of each layer of lerpnet.models' architecture (32^3 input)."""
    k3 = cfg.kernel_size**3
    e1, e2 = cfg.encoder_features
    d0, d1 = cfg.decoder_features
    enc = 2 * k3 * (16**3 * e1 * 1 + 8**3 * e2 * e1 + 2**3 * cfg.latent_features * e2)
    # a stride-2 transposed conv: every input voxel meets every tap once
    up1, up2 = 2 * k3 * 8**3 * d0 * d1, 2 * k3 * 16**3 * d1 * 1
    fc = 2 * 8 * cfg.latent_features * 8**3 * d0
    return {"encode": enc, "decode": fc + up1 + up2, "up1": up1, "up2": up2,
            "train": 3 * (enc + fc + up1 + up2)}  # forward + backward (about twice the forward)


def _torch_peer(row: dict) -> tuple[str, str]:
    """Rows compared with the same PyTorch figure: one task at one decoder width (untagged: the study's)."""
    return row["task"], row.get("decoder", width_label((16, 32)))


def random_voxels(key, n: int, occupancy: float) -> jax.Array:
    return (jax.random.uniform(key, (n, 32, 32, 32)) < occupancy).astype(jnp.float32)


def width_label(widths) -> str:
    return f"decoder {widths[0]},{widths[1]}"


def describe(launch) -> str:
    return " ".join(f"{k}={v}" for k, v in dataclasses.asdict(launch).items())


def training_config(cfg, implementation: str, dtype: str):
    """lerpnet.train's config for the PyTorch comparison: plain Adam at a constant rate, no gradient
    clipping and no augmentation, on weighted BCE (what benchmarks/torch_autoencoder.py trains)."""
    config = train.default_config()
    config.model = models.model_config(implementation=implementation, dtype=dtype)
    config.loss = losses.loss_config(name="bce", pos_weight=cfg.pos_weight)
    config.augment.mirror_axis = -1
    config.train.update(batch_size=cfg.train_batch, optimizer="adam", learning_rate=cfg.learning_rate,
                        schedule="constant", grad_clip=0.0)
    return config


class Bench:
    """Collects rows, writes the table after every part (a cut-off run keeps what it measured)."""

    def __init__(self, cfg, workdir: str | pathlib.Path):
        self.cfg = cfg
        self.start = time.perf_counter()
        self.meta = device_info() | {"config": cfg.to_dict()}
        self.stem = pathlib.Path(workdir) / device_slug() / "bench_model"
        self.rows: list[dict] = []
        self.flops = model_flops(models.model_config())
        # Algorithm 1's launches (None: the kernel's default for the widths), and per decoder width
        # the sweep's fastest once it ran
        self.launches = {"triton": TritonLaunch(**cfg.triton_launch) if cfg.triton_launch else None,
                         "mosaic": None, "xla": XlaLaunch(**cfg.xla_launch), "reference": None}
        self.swept: dict[str, TritonLaunch] = {}

    def time(self, fn, *args) -> Timing:
        return time_calls(fn, *args, warmup=self.cfg.warmup, repeats=self.cfg.repeats)

    def out_of_time(self, what: str) -> bool:
        spent = time.perf_counter() - self.start > self.cfg.time_budget_s
        if spent:
            logging.info("time budget spent: %s skipped", what)
        return spent

    def add(self, task: str, framework: str, variant: str, dtype: str, shapes: int, t: Timing, *,
            flops: float | None = None, **extra) -> None:
        """One row; `flops` per shape defaults to the study-width model's for `task`."""
        rate = shapes / t.median
        row = dict(task=task, framework=framework, variant=variant, dtype=dtype, shapes_per_call=shapes,
                   median_s=t.median, min_s=t.min, max_s=t.max, shapes_per_s=rate)
        flops = self.flops.get(task.split(":")[0]) if flops is None else flops
        if flops is not None:  # counted on the shapes actually decoded (fewer when duplicates are skipped)
            flop_s = extra.get("decoded_per_call", shapes) / t.median * flops
            row["useful_tflop_s"] = flop_s / 1e12
            if "bf16_matmul_flop_s" in self.meta:
                row["fraction_of_bf16_peak"] = flop_s / self.meta["bf16_matmul_flop_s"]
        row.update(extra)
        self.rows.append(row)
        logging.info("%s", {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})

    def write(self) -> None:
        best = {}  # the fastest PyTorch row of each task and decoder width, whatever its dtype and form
        for r in self.rows:
            if r["framework"].startswith("torch"):
                best[_torch_peer(r)] = max(best.get(_torch_peer(r), 0.0), r["shapes_per_s"])
        for r in self.rows:
            ref = best.get(_torch_peer(r))
            if ref and not r["framework"].startswith("torch"):
                r["ratio_to_best_torch"] = r["shapes_per_s"] / ref
        self.meta["wall_s"] = time.perf_counter() - self.start
        write_table(self.stem, self.rows, self.meta)

    # -- parts ------------------------------------------------------------------------------

    def ceilings(self):
        self.meta["bf16_matmul_flop_s"] = bf16_matmul_rate(self.cfg.matmul_size, self.cfg.repeats)
        self.meta["copy_bytes_per_s"] = copy_bandwidth(self.cfg.copy_bytes)

    def _model(self, **model_overrides):
        model = models.Autoencoder(models.model_config(**model_overrides))
        params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
        return model, params

    def train(self):
        cfg = self.cfg
        packed = pack_voxels(random_voxels(jax.random.key(2), cfg.train_batch, cfg.occupancy))
        idx = jnp.arange(cfg.train_batch, dtype=jnp.int32)
        for implementation, dtype in tqdm(cfg.model_variants, desc="train", unit="variant"):
            config = training_config(cfg, implementation, dtype)
            step = jax.jit(functools.partial(steps.train_step, config=config), donate_argnums=0)
            state = [steps.create_state(config)]

            def run():  # chained steps on the donated state, as lerpnet.train runs them
                for _ in range(cfg.train_steps_per_call):
                    state[0], out = step(state[0], packed, idx)
                return out["loss"]

            self.add("train", "lerpnet", implementation, dtype, cfg.train_batch * cfg.train_steps_per_call,
                     self.time(run))

    def decode(self):
        for implementation, dtype in tqdm(self.cfg.model_variants, desc="decode", unit="variant"):
            batch = self.cfg.plain_decode_batch if implementation == "flax" else self.cfg.decode_batch
            z = jax.random.normal(jax.random.key(3), (batch, 2, 2, 2, 8))
            model, params = self._model(implementation=implementation, dtype=dtype)
            dec = jax.jit(lambda p, z, m=model: m.apply(p, z, method=models.Autoencoder.decode) > 0)
            self.add("decode", "lerpnet", implementation, dtype, z.shape[0], self.time(dec, params, z))

    def launch_sweep(self):
        """The Triton kernel's launches at N = algorithm1_n[0] for each decoder width, decode only (z
        given); Algorithm 1 then runs each width on its fastest launch that agrees with the XLA
        implementation."""
        cfg = self.cfg
        n = cfg.algorithm1_n[0]
        z = jax.random.normal(jax.random.key(9), (n, 2, 2, 2, 8))
        i, j = jnp.asarray(pair_list(n, "all")).T
        for widths in cfg.decoder_widths:
            model, params = self._model(decoder_features=tuple(widths))
            label, flops = width_label(widths), model_flops(model.config)["decode"]
            ref = lerp_decode(model, params, z, i, j, steps=cfg.steps, implementation="xla")
            best = None
            for fields in tqdm(cfg.triton_sweep, desc=f"triton launches, {label}", unit="launch"):
                launch = TritonLaunch(**fields)
                if self.out_of_time(f"launch {describe(launch)} {label}"):
                    break
                fn = jax.jit(lambda p, z, i, j, m=model, launch=launch: lerp_decode(
                    m, p, z, i, j, steps=cfg.steps, implementation="triton", launch=launch))
                t0 = time.perf_counter()
                out = jax.block_until_ready(fn(params, z, i, j))
                first_call_s = time.perf_counter() - t0  # mostly compilation
                mismatch = float(jax.lax.population_count(out ^ ref).sum()) / ref.size / 32
                t = self.time(fn, params, z, i, j)
                self.add("decode", "lerpnet", f"lerp_decode triton N={n} {describe(launch)}", "bfloat16",
                         n * n * cfg.steps, t, flops=flops, decoder=label,
                         first_call_s=first_call_s, bit_mismatch_vs_xla=mismatch)
                if mismatch < cfg.max_bit_mismatch and (best is None or t.median < best[0]):
                    best = (t.median, launch)
                self.write()
            if best is not None:
                self.swept[label] = best[1]

    def _launch(self, implementation: str, label: str):
        """The launch Algorithm 1 runs `implementation` with at decoder width `label`."""
        if implementation == "triton" and label in self.swept:
            return self.swept[label]
        return self.launches[implementation]

    def algorithm1(self):
        """Encode N shapes and decode every ordered pair's path through lerpnet.ops.lerp_decode."""
        cfg = self.cfg
        mismatch = self.meta.setdefault("bit_mismatch_vs_reference", {})
        used = self.meta.setdefault("algorithm1_launch", {})
        for widths in cfg.decoder_widths:
            model, params = self._model(decoder_features=tuple(widths))
            flops = model_flops(model.config)["decode"]
            label = width_label(widths)
            # "auto" is what a researcher's call runs at these widths: timed under the implementation it picks
            names = tuple(dict.fromkeys(resolve_implementation(model, params, name) for name in cfg.implementations))
            for name in names:
                _, launch = resolve_launch(model, params, name, self._launch(name, label))  # what lerp_decode runs
                used[f"{name} {label}"] = describe(launch) if launch is not None else "none"
            # correctness on the device: each implementation against the unfused float32 reference
            x = random_voxels(jax.random.key(4), cfg.check_n, 0.3)
            z = model.apply(params, x, method=models.Autoencoder.encode)
            z = z + jax.random.normal(jax.random.key(5), z.shape)  # untrained encoder: spread the latents
            i, j = jnp.asarray(pair_list(cfg.check_n, "all")).T
            ref = lerp_decode(model, params, z, i, j, steps=cfg.steps, implementation="reference")
            for name in names:
                out = lerp_decode(model, params, z, i, j, steps=cfg.steps, implementation=name,
                                  launch=self._launch(name, label))
                mismatch[f"{name} {label}"] = float(jax.lax.population_count(out ^ ref).sum()) / ref.size / 32
            for n in tqdm(cfg.algorithm1_n, desc=f"Algorithm 1, {label}", unit="N"):
                self._algorithm1_rows(model, params, n, label, flops, names)
                self.write()
            for n, c0, c1, warmup, repeats in cfg.end_to_end:
                if (c0, c1) == tuple(widths) and not self.out_of_time(f"Algorithm 1 end to end N={n} {label}"):
                    self._end_to_end_row(model, params, n, label, flops, warmup, repeats)
                    self.write()

    def _end_to_end_row(self, model, params, n: int, label: str, flops: float, warmup: int, repeats: int):
        """Large N through score_pairs alone (encode to every ordered pair's scores) with
        `end_to_end_implementation`: the first call's wall time includes compiling (`compile_s`, the first
        call's `PairScores.compile_seconds`); `stream_s` excludes it."""
        cfg = self.cfg
        x = random_voxels(jax.random.key(6), n, cfg.occupancy)
        reference = random_voxels(jax.random.key(10), cfg.reference_shapes, cfg.occupancy)
        encode = jax.jit(functools.partial(model.apply, method=models.Autoencoder.encode))
        calls = []

        def end_to_end():
            calls.append(score_pairs(model, params, encode(params, x), x, reference=reference, pairs="all",
                                     steps=cfg.steps, implementation=cfg.end_to_end_implementation, progress=True))

        t = time_calls(end_to_end, warmup=warmup, repeats=repeats)
        last = calls[-1]
        self.add("decode", "lerpnet", f"Algorithm 1 N={n}, encode to scores (lerpnet.allpairs.score_pairs): "
                 f"lerp_decode {last.implementation}", "bfloat16", n * n * cfg.steps, t, flops=flops, decoder=label,
                 algorithm1_ms=1e3 * t.median, decoded_per_call=last.decodes, warmup=warmup, repeats=repeats,
                 stream_s=statistics.median(c.seconds for c in calls[warmup:]), compile_s=calls[0].compile_seconds,
                 block_pairs=last.block_pairs,
                 memory_mb=last.memory_bytes / 2**20)

    def _algorithm1_rows(self, model, params, n: int, label: str, flops: float, names: tuple[str, ...]):
        cfg = self.cfg
        x = random_voxels(jax.random.key(6), n, cfg.occupancy)
        reference = random_voxels(jax.random.key(10), cfg.reference_shapes, cfg.occupancy)  # novelty's training set
        i, j = jnp.asarray(pair_list(n, "all")).T
        encode = functools.partial(model.apply, method=models.Autoencoder.encode)
        encode_jit = jax.jit(encode)
        for name in names:
            if n > cfg.max_n.get(name, n) or self.out_of_time(f"Algorithm 1 {name} N={n} {label}"):
                continue
            launch = self._launch(name, label)
            every_pair = jax.jit(lambda p, x, i, j, name=name, launch=launch: lerp_decode(
                model, p, encode(p, x), i, j, steps=cfg.steps, implementation=name, launch=launch))
            once = jax.jit(lambda p, x, name=name, launch=launch: lerp_decode_all_pairs(
                model, p, encode(p, x), steps=cfg.steps, implementation=name, launch=launch))
            end_to_end = (lambda p, x, name=name: score_pairs(model, p, encode_jit(p, x), x, reference=reference,
                                                              pairs="all", steps=cfg.steps, implementation=name))
            distinct = n + n * (n - 1) // 2 * (cfg.steps - 2)
            for what, fn, args, decoded in (
                    ("every ordered pair", every_pair, (params, x, i, j), n * n * cfg.steps),
                    ("each distinct shape once", once, (params, x), distinct),
                    ("encode to scores (lerpnet.allpairs.score_pairs)", end_to_end, (params, x), distinct)):
                t = self.time(fn, *args)
                self.add("decode", "lerpnet", f"Algorithm 1 N={n}, {what}: lerp_decode {name}", "bfloat16",
                         n * n * cfg.steps, t, flops=flops, decoder=label, algorithm1_ms=1e3 * t.median,
                         decoded_per_call=decoded)

    def layers(self):
        b = self.cfg.layer_batch
        kernels = {"up1": (4, 4, 4, 16, 32), "up2": (4, 4, 4, 32, 1)}
        inputs = {"up1": (b, 8, 8, 8, 16), "up2": (b, 16, 16, 16, 32)}
        cells = [(layer, dtype, name) for layer in kernels for dtype in self.cfg.layer_dtypes
                 for name in self.cfg.layer_formulations]
        for layer, dtype, name in tqdm(cells, desc="layers", unit="form"):
            if self.out_of_time(f"layer {layer} {dtype} {name}"):
                continue
            x = jax.random.normal(jax.random.key(7), inputs[layer], dtype)
            w = jax.random.normal(jax.random.key(8), kernels[layer], dtype) * 0.1
            fn = fast_layers.CONV_TRANSPOSE[name]
            self.add(f"{layer}:forward", "lerpnet", name, dtype, b, self.time(jax.jit(fn), x, w))
            grad = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w).astype(jnp.float32) ** 2), argnums=(0, 1)))
            self.add(f"{layer}:backward", "lerpnet", name, dtype, b, self.time(grad, x, w))

    def torch(self, compile: bool):
        """The same decoders in PyTorch, every form of benchmarks.torch_autoencoder.DECODE_FORMS (eager
        ones, or the torch.compile ones), float32 (TF32 allowed) and bfloat16; training at the study's widths."""
        try:
            import torch
        except ImportError:
            logging.info("torch not importable: PyTorch rows skipped")
            return
        if not torch.cuda.is_available():
            logging.info("torch sees no CUDA device: PyTorch rows skipped")
            return
        from benchmarks import torch_autoencoder as ta

        cfg = self.cfg
        self.meta["torch"] = torch.__version__
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        dev = torch.device("cuda")
        label = "torch.compile" if compile else "torch eager"

        def timed(fn, *args):
            def call():
                fn(*args)
                torch.cuda.synchronize()  # time_calls blocks on jax arrays only
            return self.time(call)

        forms = [f for f in ta.DECODE_FORMS if f.startswith("compile") == compile]
        cells = [(tuple(w), dtype, form) for w in cfg.decoder_widths for dtype in ("float32", "bfloat16")
                 for form in forms]
        for widths, dtype, form in tqdm(cells, desc=f"{label} decode", unit="form"):
            if compile and self.out_of_time(f"{label} decode {form} {dtype} {widths}"):
                continue
            torch.manual_seed(0)
            z = torch.randn(cfg.decode_batch, 64, device=dev)
            try:
                decode = ta.make_decode(widths, z, dtype=getattr(torch, dtype), form=form)
                self.add("decode", label, form, dtype, cfg.decode_batch, timed(decode),
                         flops=model_flops(models.model_config(decoder_features=widths))["decode"],
                         decoder=width_label(widths))
            except torch.OutOfMemoryError:  # one form too big for what is left beside jax: the others still run
                cell = f"{label} decode {form} {dtype} {widths}"
                self.meta.setdefault("errors", {})[cell] = traceback.format_exc(limit=-2)
                logging.error("%s ran out of memory", cell)
            # a CUDA graph keeps its memory pool until collected: free it before the next form
            decode = None
            gc.collect()
            torch.cuda.empty_cache()
            self.write()
        for bf16 in tqdm((False, True), desc=f"{label} train", unit="dtype"):
            dtype = "bfloat16" if bf16 else "float32"
            if compile and self.out_of_time(f"{label} train {dtype}"):
                continue
            torch.manual_seed(0)
            model = ta.TorchAutoencoder().to(dev)
            x = (torch.rand(cfg.train_batch, 32, 32, 32, device=dev) < cfg.occupancy).float()
            step = ta.make_train_step(model, bf16=bf16, pos_weight=cfg.pos_weight, lr=cfg.learning_rate,
                                      compile=compile)

            def run(x):
                for _ in range(cfg.train_steps_per_call):
                    step(x)

            self.add("train", label, "autocast" if bf16 else "", dtype, cfg.train_batch * cfg.train_steps_per_call,
                     timed(run, x))
            if not compile:
                self._torch_layers(torch, dev, bf16, timed)
            self.write()

    def _torch_layers(self, torch, dev, bf16, timed):
        b = self.cfg.layer_batch
        dtype = torch.bfloat16 if bf16 else torch.float32
        for layer, (cin, cout, n) in {"up1": (16, 32, 8), "up2": (32, 1, 16)}.items():
            conv = torch.nn.ConvTranspose3d(cin, cout, 4, 2, padding=1).to(dev, dtype)
            x = torch.randn(b, cin, n, n, n, device=dev, dtype=dtype)
            with torch.no_grad():
                t = timed(conv, x)
            self.add(f"{layer}:forward", "torch eager", "ConvTranspose3d", "bfloat16" if bf16 else "float32", b, t)


def run(cfg, workdir: str | pathlib.Path) -> Bench:
    """Runs `cfg.parts` in order; a part that fails is recorded in meta['errors'] and the rest still run."""
    bench = Bench(cfg, workdir)
    bench.meta["errors"] = {}
    parts = {"ceilings": bench.ceilings, "launch_sweep": bench.launch_sweep, "algorithm1": bench.algorithm1,
             "train": bench.train, "decode": bench.decode, "layers": bench.layers,
             "torch": functools.partial(bench.torch, False), "torch_compile": functools.partial(bench.torch, True)}
    unknown = [name for name in cfg.parts if name not in parts]
    if unknown:
        raise ValueError(f"config.parts names unknown parts {unknown}; known: {', '.join(parts)}")
    unknown = unknown_implementations((*cfg.implementations, cfg.end_to_end_implementation))
    if unknown:
        raise ValueError(f"config.implementations / end_to_end_implementation name unknown implementations "
                         f"{unknown}; known: {', '.join(IMPLEMENTATIONS)} (and auto for end_to_end_implementation)")
    for name in cfg.parts:
        logging.info("part %s (%.0f s in)", name, time.perf_counter() - bench.start)
        try:
            parts[name]()
        except Exception:  # a benchmark reports a broken part and goes on measuring the others
            bench.meta["errors"][name] = traceback.format_exc(limit=-8)
            logging.error("part %s failed:\n%s", name, bench.meta["errors"][name])
        bench.write()
    return bench


def define_flags() -> None:
    """The command line's flags, defined only when this is the program run (so that the benchmarks,
    each with its own --config and --workdir, can be imported together)."""
    config_flags.DEFINE_config_file("config", "configs/bench_model.py", "Benchmark config.")
    flags.DEFINE_string("workdir", None, "Results go to <workdir>/<device>/bench_model.{json,csv,md}.")
    flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    cfg = flags.FLAGS.config
    if {"torch", "torch_compile"} & set(cfg.parts):
        # PyTorch shares the process and the GPU: jax's default 75% share left torch.compile's bf16
        # graphs too little memory. Read when jax first touches the GPU, so set before any jax work.
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", str(cfg.jax_memory_fraction))
    bench = run(cfg, flags.FLAGS.workdir)
    print(bench.stem.with_suffix(".md").read_text())
    print(f"wrote {bench.stem}.{{md,csv,json}}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
