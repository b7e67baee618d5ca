"""Lowering, compiling and run time of versions of a lerp_decode kernel's file, side by side.

    python -m benchmarks.kernel_versions --folder=versions --versions=before,after[,...] [--latents=50] \
        [--widths=16,32]

Each version is a copy of a kernel module, `lerpnet/ops/lerp_decode/mosaic.py` or `triton.py`, at some
commit or with a change tried (`<folder>/<name>.py`, e.g. `git show REV:lerpnet/ops/lerp_decode/mosaic.py >
versions/before.py`), run at the module's `default_launch(params)` (a file older than that function: its
launch class's defaults). For every ordered pair of N random latents, 11 steps, at the given decoder widths
(the weights scaled by 3 so that most logits are far from the threshold), each version is lowered and
compiled (both timed), run once and checked bit for bit against the first version; then they are timed in
interleaved rounds (the median of `--calls` calls a round). Prints one line a version and step, and the fastest version that matches the
first. Needs a CUDA GPU (Hopper for the Mosaic kernel).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from lerpnet import models
from lerpnet.allpairs.shapes import pair_list

_FOLDER = flags.DEFINE_string("folder", "versions", "the folder holding <name>.py for each version")
_VERSIONS = flags.DEFINE_list("versions", None, "the versions' names, the reference first", required=True)
_N = flags.DEFINE_integer("latents", 50, "latents N: every ordered pair, 11 steps", lower_bound=2)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "interleaved timing rounds", lower_bound=1)
_CALLS = flags.DEFINE_integer("calls", 5, "timed calls a version a round (their median)", lower_bound=1)
_WIDTHS = flags.DEFINE_list("widths", ["16", "32"], "the decoder's widths C0,C1 (decoder_features)")
_STEPS = 11  # the study's t = 0, 0.1, ..., 1


def load_versions(folder: pathlib.Path, names: list[str]) -> dict:
    """name -> the module of <folder>/<name>.py; every file checked before any is loaded."""
    missing = [str(folder / f"{name}.py") for name in names if not (folder / f"{name}.py").is_file()]
    if missing:
        raise FileNotFoundError(f"no such version file: {', '.join(missing)}")
    modules = {}
    for name in names:
        spec = importlib.util.spec_from_file_location(f"kernel_version_{name}", folder / f"{name}.py")
        modules[name] = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules


def main(argv):
    del argv
    names = _VERSIONS.value
    modules = load_versions(pathlib.Path(_FOLDER.value), names)
    print(jax.__version__, jax.devices()[0].device_kind, flush=True)
    model = models.Autoencoder(models.model_config(decoder_features=tuple(int(c) for c in _WIDTHS.value)))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    params = jax.tree.map(lambda a: a * 3, params)
    z = jax.random.normal(jax.random.key(1), (_N.value, 2, 2, 2, 8))
    i, j = (jnp.asarray(a) for a in pair_list(_N.value, "all").T)
    compiled, reference, same = {}, None, []
    for name in names:
        module = modules[name]
        start = time.perf_counter()
        # kernel files saved from commits before every implementation had default_launch: the class defaults
        launch = module.default_launch(params) if hasattr(module, "default_launch") else module.LAUNCH()
        lowered = module._lerp_decode.lower(params, z, i, j, 0.0, steps=_STEPS, span=(0, _STEPS), activation="relu",
                                            launch=launch, interpret=False)
        lowered_at = time.perf_counter()
        compiled[name] = lowered.compile()
        compiled_at = time.perf_counter()
        out = np.asarray(jax.block_until_ready(compiled[name](params, z, i, j, 0.0)))
        reference = out if reference is None else reference
        if np.array_equal(out, reference):
            same.append(name)
        print(f"{name}: {launch}; lower {lowered_at - start:.2f} s, compile {compiled_at - lowered_at:.2f} s; differs from "
              f"{names[0]} in {int((out != reference).sum())} of {out.size} words", flush=True)
    medians = {name: [] for name in names}
    for _ in range(_ROUNDS.value):
        for name in names:
            calls = []
            for _ in range(_CALLS.value):
                start = time.perf_counter()
                jax.block_until_ready(compiled[name](params, z, i, j, 0.0))
                calls.append(time.perf_counter() - start)
            medians[name].append(np.median(calls))
    shapes = _N.value ** 2 * _STEPS
    for name, values in medians.items():
        print(f"{name}: every pair N = {_N.value} ({shapes:,} shapes), medians of {_CALLS.value} in {_ROUNDS.value} "
              f"rounds: {' '.join(f'{v * 1e3:.2f}' for v in values)} ms; median {np.median(values) * 1e3:.2f} ms")
    print("fastest:", min(same, key=lambda name: np.median(medians[name])), flush=True)


if __name__ == "__main__":
    app.run(main)
