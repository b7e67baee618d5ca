"""How far the fused decoder's voxels are from the unfused float32 decoder on a trained run's own chairs.

    python -m benchmarks.fused_agreement --run=RUN --workdir=OUT [--chairs=0] [--implementations=auto,xla]

The fused implementations of `lerpnet.lerp_decode` compute in bf16 with float32 accumulation, so a
voxel whose float32 logit sits at the threshold may flip. An untrained model's logits all sit near
it, so this is measured where it matters: every ordered pair's path (11 steps) between a trained
run's validation chairs (`--chairs` of them, 0 = all), at the run's own threshold, against
interpolate -> `Autoencoder.decode` at float32 matmul precision -> threshold. Writes
fused_agreement.{json,csv,md}: per implementation, the share of voxels that differ and the largest
|logit - threshold logit| among them, also as a share of the logits' standard deviation.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from tqdm import tqdm

from lerpnet import console, models
from lerpnet.allpairs.shapes import pair_list
from lerpnet.bitpack import unpack_voxels
from lerpnet.data import load_dataset
from lerpnet.device import device_info
from lerpnet.ops.lerp_decode import IMPLEMENTATIONS, lerp_decode, reference
from lerpnet.ops.lerp_decode.api import resolve_implementation, unknown_implementations
from lerpnet.ops.lerp_decode.common import threshold_logit
from lerpnet.tables import write_table
from lerpnet.workdir import load_run

STEPS = 11


def block_counts(model: models.Autoencoder, params, z: jax.Array, i: jax.Array, j: jax.Array, valid: jax.Array, *,
                 threshold: float, implementation: str) -> dict[str, jax.Array]:
    """One block of pairs (`valid` masks the padding): voxels compared and differing, the largest
    |logit - threshold logit| at a differing voxel, and the float32 logits' sum and sum of squares."""
    fused = unpack_voxels(lerp_decode(model, params, z, i, j, steps=STEPS, threshold=threshold,
                                      implementation=implementation))
    logits = reference.logits(model, params, z, i, j, steps=STEPS, span=(0, STEPS))
    mask = jnp.broadcast_to(valid[:, None, None, None, None], fused.shape)
    logit = threshold_logit(threshold)
    differ = (fused != (logits > logit)) & mask
    return {"voxels": mask.sum(dtype=jnp.float32), "differ": differ.sum(dtype=jnp.float32),
            "max_margin": jnp.max(jnp.where(differ, jnp.abs(logits - logit), 0.0)),
            "sum": jnp.where(mask, logits, 0.0).sum(), "sumsq": jnp.where(mask, logits * logits, 0.0).sum()}


def agreement(model: models.Autoencoder, params, z: jax.Array, *, threshold: float, implementation: str,
              block: int = 256) -> dict:
    """Every ordered pair of the N latents `z`, in blocks of `block` pairs (the last one padded)."""
    n = len(z)
    i, j = pair_list(n, "all").T
    block = min(block, len(i))
    pad = -len(i) % block
    valid = np.arange(len(i) + pad) < len(i)
    i, j = np.pad(i, (0, pad)), np.pad(j, (0, pad))
    run = jax.jit(lambda i, j, v: block_counts(model, params, z, i, j, v, threshold=threshold,
                                               implementation=implementation))
    parts = [jax.device_get(run(i[s:s + block], j[s:s + block], valid[s:s + block]))
             for s in tqdm(range(0, len(i), block), desc=f"pairs, {implementation}", unit="block")]
    total = {key: sum(float(p[key]) for p in parts) for key in ("voxels", "differ", "sum", "sumsq")}
    total["max_margin"] = max(float(p["max_margin"]) for p in parts)
    std = float(np.sqrt(total["sumsq"] / total["voxels"] - (total["sum"] / total["voxels"]) ** 2))
    return {"implementation": implementation, "chairs": n, "pairs": n * n, "steps": STEPS,
            "voxels": int(total["voxels"]), "differing": int(total["differ"]),
            "differing_share": total["differ"] / total["voxels"],
            "max_abs_logit_margin_differing": total["max_margin"], "logit_std": std,
            "max_margin_over_std": total["max_margin"] / std}


def report(run_path: str | pathlib.Path, workdir: str | pathlib.Path, *, chairs: int = 0,
           implementations=("auto", "xla")) -> list[dict]:
    """Write fused_agreement.{json,csv,md} into `workdir`; returns the rows."""
    unknown = unknown_implementations(implementations)
    if unknown:
        raise ValueError(f"--implementations: unknown {', '.join(unknown)}; "
                         f"choose from auto, {', '.join(IMPLEMENTATIONS)}")
    run = load_run(run_path)
    model = models.Autoencoder(run.config.model)
    val = load_dataset(run.config.data).val_voxels
    if chairs < 0 or chairs > len(val):
        raise ValueError(f"--chairs must be 0 (all) or 1..{len(val)}, the run's validation chairs; got {chairs}")
    val = val[:chairs or len(val)]
    z = model.apply(run.params, jnp.asarray(val, jnp.float32), method=models.Autoencoder.encode)
    # "auto" is "xla" off the GPU
    names = list(dict.fromkeys(resolve_implementation(model, run.params, name) for name in implementations))
    logging.info("%d validation chairs of %s at threshold %.2f: %s", len(val), run.checkpoint, run.threshold, names)
    rows = [agreement(model, run.params, z, threshold=run.threshold, implementation=name) for name in names]
    meta = {**device_info(), "run": str(run.checkpoint), "threshold": run.threshold,
            "decoder_features": list(run.config.model.decoder_features),
            "fused_compute": "bf16 with float32 accumulation", "reference": "float32 matmul precision"}
    write_table(pathlib.Path(workdir) / "fused_agreement", rows, meta)
    return rows


def define_flags() -> None:
    """The program's flags (defined when it runs, so that importing its functions defines none)."""
    flags.DEFINE_string("run", None, "The trained run's workdir (config.json + checkpoints/).")
    flags.DEFINE_string("workdir", None, "Folder for the table.")
    flags.DEFINE_integer("chairs", 0, "How many of the run's validation chairs (0 = all).")
    flags.DEFINE_list("implementations", ["auto", "xla"], "lerp_decode implementations to check.")
    flags.mark_flags_as_required(["run", "workdir"])


def main(argv):
    console.start(argv)
    args = flags.FLAGS
    with console.one_line_errors((ValueError, OSError)):  # a missing run or dataset, a bad --chairs
        rows = report(args.run, args.workdir, chairs=args.chairs, implementations=args.implementations)
    for row in rows:
        logging.info("%s: %.2e of the voxels differ, every one within %.3g of the threshold logit (%.2g std)",
                     row["implementation"], row["differing_share"], row["max_abs_logit_margin_differing"],
                     row["max_margin_over_std"])
    console.print_outputs({"table": pathlib.Path(args.workdir) / "fused_agreement.md"})


if __name__ == "__main__":
    define_flags()
    app.run(main)
