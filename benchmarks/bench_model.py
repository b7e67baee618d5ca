"""Benchmark lerpnet's training step and decoding against the same network in PyTorch.

    python -m experiments.bench_model --config=configs/bench_model.py --output_dir=results/perf

Measures in one run on one device: the bf16 matrix-multiply and copy ceilings; lerpnet training
steps (batch `train_batch`) and decoding per model variant and dtype; Algorithm 1 through the fused
decoder (encode N shapes, all N^2 pairs x `steps` interpolants, threshold, bit-pack); the transposed
convolution formulations layer by layer; and PyTorch (eager, then torch.compile) when torch is
importable. Each figure is the median of `repeats` timed calls after warm-up, blocked until ready.
Rows give shapes/s, useful TFLOP/s (FLOPs the network needs per shape, not what a formulation
executes), the fraction of the measured bf16 matmul ceiling and the ratio to the best PyTorch
figure for the same task and dtype.
"""

from __future__ import annotations

import functools
import re
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging
from ml_collections import config_flags

from benchmarks import fast_layers
from lerpnet import losses, models, timing
from lerpnet.ops.lerp_decode import api as fused_decoder

_CONFIG = config_flags.DEFINE_config_file("config", "configs/bench_model.py", "Benchmark config.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "results/perf", "Results go to <output_dir>/<device>/.")


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


def random_voxels(key, n: int, occupancy: float) -> jax.Array:
    return (jax.random.uniform(key, (n, 32, 32, 32)) < occupancy).astype(jnp.float32)


def make_train_step(model, tx, pos_weight: float):
    """Adam on lerpnet's weighted BCE (torch's `pos_weight`), without training's augmentation, as
    experiments/torch_autoencoder.py does it."""
    loss_cfg = losses.loss_config(name="bce", pos_weight=pos_weight)

    def loss_fn(params, x):
        return jnp.mean(losses.voxel_loss(model.apply(params, x), x, loss_cfg))

    @jax.jit
    def step(state, x):
        params, opt_state = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


class Bench:
    """Collects rows, writes the table after every part (a cut-off run keeps what it measured)."""

    def __init__(self, cfg, output_dir: str):
        self.cfg = cfg
        self.start = time.perf_counter()
        self.meta = timing.device_info() | {"config": cfg.to_dict()}
        slug = re.sub(r"[^a-z0-9]+", "_", self.meta["device"].lower()).strip("_")
        self.stem = f"{output_dir}/{slug}/bench_model"
        self.rows: list[dict] = []
        self.flops = model_flops(models.model_config())
        self.model_cfg = models.model_config()
        self.pallas_launch = dict(cfg.pallas)  # Algorithm 1's launch: the sweep's fastest once it ran

    def time(self, fn, *args) -> timing.Timing:
        return timing.time_calls(fn, *args, warmup=self.cfg.warmup, repeats=self.cfg.repeats)

    def add(self, task: str, framework: str, variant: str, dtype: str, shapes: int, t: timing.Timing,
            **extra) -> None:
        rate = shapes / t.median
        row = dict(task=task, framework=framework, variant=variant, dtype=dtype, shapes_per_call=shapes,
                   median_s=t.median, min_s=t.min, max_s=t.max, shapes_per_s=rate)
        flops = self.flops.get(task.split(":")[0])
        if flops is not None:  # counted on the shapes actually decoded (fewer when duplicates are skipped)
            flop_s = extra.get("decoded_per_call", shapes) / t.median * flops
            row["useful_tflop_s"] = flop_s / 1e12
            if "bf16_matmul_flop_s" in self.meta:
                row["fraction_of_bf16_peak"] = flop_s / self.meta["bf16_matmul_flop_s"]
        row.update(extra)
        self.rows.append(row)
        logging.info("%s", {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()})

    def write(self) -> None:
        best = {}
        for r in self.rows:
            if r["framework"].startswith("torch"):
                key = (r["task"], r["dtype"])
                best[key] = max(best.get(key, 0.0), r["shapes_per_s"])
        for r in self.rows:
            ref = best.get((r["task"], r["dtype"]))
            if ref and not r["framework"].startswith("torch"):
                r["ratio_to_best_torch"] = r["shapes_per_s"] / ref
        self.meta["wall_s"] = time.perf_counter() - self.start
        timing.write_table(self.stem, self.rows, self.meta)

    # -- parts ------------------------------------------------------------------------------

    def ceilings(self):
        n = self.cfg.matmul_size
        a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
        b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
        t = self.time(jax.jit(lambda a, b: a @ b), a, b)
        self.meta["bf16_matmul_flop_s"] = 2 * n**3 / t.median
        self.meta["copy_bytes_per_s"] = timing.copy_bandwidth(self.cfg.copy_bytes)

    def _model(self, implementation, dtype):
        model = models.Autoencoder(models.model_config(implementation=implementation, dtype=dtype))
        params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
        return model, params

    def train(self):
        cfg = self.cfg
        x = random_voxels(jax.random.key(2), cfg.train_batch, cfg.occupancy)
        for implementation, dtype in cfg.model_variants:
            model, params = self._model(implementation, dtype)
            tx = optax.adam(cfg.learning_rate)
            step = make_train_step(model, tx, cfg.pos_weight)

            def run(state, x):
                for _ in range(cfg.train_steps_per_call):
                    state, loss = step(state, x)
                return loss

            t = self.time(run, (params, tx.init(params)), x)
            self.add("train", "lerpnet", implementation, dtype, cfg.train_batch * cfg.train_steps_per_call, t)

    def decode(self):
        for implementation, dtype in self.cfg.model_variants:
            batch = self.cfg.plain_decode_batch if implementation == "flax" else self.cfg.decode_batch
            z = jax.random.normal(jax.random.key(3), (batch, 2, 2, 2, 8))
            model, params = self._model(implementation, dtype)
            dec = jax.jit(lambda p, z, m=model: m.apply(p, z, method=models.Autoencoder.decode) > 0)
            self.add("decode", "lerpnet", implementation, dtype, z.shape[0], self.time(dec, params, z))

    def fused(self):
        cfg = self.cfg
        model, params = self._model("subpixel", "float32")
        encode = jax.jit(lambda p, x: model.apply(p, x, method=models.Autoencoder.encode))
        kwargs = {"pallas": self.pallas_launch, "xla": dict(chunk=cfg.xla_chunk)}
        self.meta["algorithm1_launch"] = self.pallas_launch
        # correctness on the device: fused outputs vs the unfused float32 reference
        x = random_voxels(jax.random.key(4), cfg.check_n, 0.3)
        z = encode(params, x)
        z = z + jax.random.normal(jax.random.key(5), z.shape)  # untrained encoder: spread the latents
        i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(cfg.check_n), jnp.arange(cfg.check_n), indexing="ij"))
        ref = fused_decoder.lerp_decode(model, params, z, i, j, steps=cfg.steps, backend="reference")
        mismatch = {}
        for backend in cfg.fused_backends:
            out = fused_decoder.lerp_decode(model, params, z, i, j, steps=cfg.steps, backend=backend,
                                            **kwargs[backend])
            diff = jax.lax.population_count(out ^ ref).sum()
            mismatch[backend] = float(diff) / ref.size / 32
        self.meta["fused_bit_mismatch_vs_reference"] = mismatch
        for n in cfg.fused_n:
            x = random_voxels(jax.random.key(6), n, cfg.occupancy)
            i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"))
            for backend in cfg.fused_backends:
                if backend == "xla" and n > cfg.xla_max_n:
                    continue

                @jax.jit
                def algorithm1(params, x, i, j, backend=backend):
                    z = model.apply(params, x, method=models.Autoencoder.encode)
                    return fused_decoder.lerp_decode(model, params, z, i, j, steps=cfg.steps, backend=backend,
                                                     **kwargs[backend])

                t = self.time(algorithm1, params, x, i, j)
                self.add("decode", "lerpnet", f"fused_{backend} N={n} (Algorithm 1)", "bfloat16",
                         n * n * cfg.steps, t, algorithm1_ms=1e3 * t.median, decoded_per_call=n * n * cfg.steps)

            if "pallas" in cfg.fused_backends:  # the same N^2 x steps shapes, each distinct one decoded once

                @jax.jit
                def algorithm1_once(params, x):
                    z = model.apply(params, x, method=models.Autoencoder.encode)
                    return fused_decoder.lerp_decode_all_pairs(model, params, z, steps=cfg.steps, backend="pallas",
                                                               **kwargs["pallas"])

                t = self.time(algorithm1_once, params, x)
                self.add("decode", "lerpnet", f"fused_pallas N={n} (Algorithm 1, each distinct shape once)",
                         "bfloat16", n * n * cfg.steps, t, algorithm1_ms=1e3 * t.median,
                         decoded_per_call=n + n * (n - 1) // 2 * (cfg.steps - 2))

    def pallas_sweep(self):
        """Kernel launch shapes at N = fused_n[0], Algorithm 1's decode only (z given)."""
        cfg = self.cfg
        n = cfg.fused_n[0]
        model, params = self._model("subpixel", "float32")
        z = jax.random.normal(jax.random.key(9), (n, 2, 2, 2, 8))
        i, j = (a.ravel() for a in jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"))
        ref = fused_decoder.lerp_decode_xla(params, z, i, j, steps=cfg.steps)
        best = None
        for launch in cfg.pallas_sweep:
            if time.perf_counter() - self.start > cfg.time_budget_s:
                logging.info("time budget spent: pallas sweep stops before %s", launch)
                break
            fn = functools.partial(fused_decoder.lerp_decode_pallas, steps=cfg.steps, **launch)
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn(params, z, i, j))
            first_call_s = time.perf_counter() - t0  # mostly compilation
            mismatch = float(jax.lax.population_count(out ^ ref).sum()) / ref.size / 32
            t = self.time(fn, params, z, i, j)
            self.add("decode", "lerpnet", f"fused_pallas N={n} " + " ".join(f"{k}={v}" for k, v in launch.items()),
                     "bfloat16", n * n * cfg.steps, t, first_call_s=first_call_s, bit_mismatch_vs_xla=mismatch)
            if "stages" not in launch and mismatch < 5e-3 and (best is None or t.median < best[0]):
                best = (t.median, dict(launch))
            self.write()
        if best is not None:
            self.pallas_launch = best[1]

    def layers(self):
        b = self.cfg.layer_batch
        kernels = {"up1": (4, 4, 4, 16, 32), "up2": (4, 4, 4, 32, 1)}
        inputs = {"up1": (b, 8, 8, 8, 16), "up2": (b, 16, 16, 16, 32)}
        for layer, kshape in kernels.items():
            for dtype in self.cfg.layer_dtypes:
                x = jax.random.normal(jax.random.key(7), inputs[layer], dtype)
                w = jax.random.normal(jax.random.key(8), kshape, dtype) * 0.1
                for name in self.cfg.layer_formulations:
                    if time.perf_counter() - self.start > self.cfg.time_budget_s:
                        logging.info("time budget spent: layer %s %s %s skipped", layer, dtype, name)
                        continue
                    fn = fast_layers.CONV_TRANSPOSE[name]
                    fwd = jax.jit(fn)
                    self.add(f"{layer}:forward", "lerpnet", name, dtype, b, self.time(fwd, x, w))
                    grad = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w).astype(jnp.float32) ** 2),
                                            argnums=(0, 1)))
                    self.add(f"{layer}:backward", "lerpnet", name, dtype, b, self.time(grad, x, w))

    def torch(self, compile: bool):
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
        dev = torch.device("cuda")
        label = "torch.compile" if compile else "torch eager"

        def timed(fn, *args):
            def call():
                fn(*args)
                torch.cuda.synchronize()  # time_calls blocks on jax arrays only
            return self.time(call)

        for bf16 in (False, True):
            dtype = "bfloat16" if bf16 else "float32"
            torch.manual_seed(0)
            model = ta.TorchAutoencoder().to(dev)
            x = (torch.rand(cfg.train_batch, 32, 32, 32, device=dev) < cfg.occupancy).float()
            step = ta.make_train_step(model, bf16=bf16, pos_weight=cfg.pos_weight, lr=cfg.learning_rate,
                                      compile=compile)

            def run(x):
                for _ in range(cfg.train_steps_per_call):
                    step(x)

            variant = "autocast" if bf16 else ""
            decode = ta.make_decode(model, bf16=bf16, compile=compile)
            z = torch.randn(cfg.decode_batch, 64, device=dev)
            for task, fn, arg, shapes in (("decode", decode, z, cfg.decode_batch),
                                          ("train", run, x, cfg.train_batch * cfg.train_steps_per_call)):
                if compile and time.perf_counter() - self.start > cfg.time_budget_s:
                    logging.info("time budget spent: %s %s %s skipped", label, task, dtype)
                    continue
                self.add(task, label, variant, dtype, shapes, timed(fn, arg))
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


def run(cfg, output_dir: str) -> Bench:
    """Runs `cfg.parts` in order; a part that fails is recorded in meta['errors'] and the rest still run."""
    bench = Bench(cfg, output_dir)
    bench.meta["errors"] = {}
    parts = {"ceilings": bench.ceilings, "train": bench.train, "decode": bench.decode, "fused": bench.fused,
             "pallas_sweep": bench.pallas_sweep, "layers": bench.layers,
             "torch": functools.partial(bench.torch, False), "torch_compile": functools.partial(bench.torch, True)}
    for name in cfg.parts:
        logging.info("part %s (%.0f s in)", name, time.perf_counter() - bench.start)
        try:
            parts[name]()
        except Exception:  # a benchmark reports a broken part and goes on measuring the others
            bench.meta["errors"][name] = traceback.format_exc(limit=-8)
            logging.error("part %s failed:\n%s", name, bench.meta["errors"][name])
        bench.write()
    return bench


def main(argv):
    del argv
    bench = run(_CONFIG.value, _OUTPUT_DIR.value)
    print(open(bench.stem + ".md").read())


if __name__ == "__main__":
    app.run(main)
