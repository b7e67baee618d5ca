"""Compile and run time of versions of lerpnet/ops/lerp_decode/mosaic.py, each checked bit for bit against the first.

Run from the repository root with the versions in versions/<name>.py: cur_mosaic (the file of commit 47ec836),
rolled_mosaic (up1's eight output parities a fori_loop instead of unrolled), rolled_nocache_mosaic (and up2's
view masks computed at each view instead of once a row). Ends by naming the fastest version that matches the
first bit for bit.
"""
import importlib.util, time, sys
import jax, jax.numpy as jnp, numpy as np
from lerpnet import models
from lerpnet.allpairs.shapes import pair_list
from lerpnet.ops.lerp_decode.mosaic import MosaicLaunch
names = ["cur_mosaic", "rolled_mosaic", "rolled_nocache_mosaic"]
mods = {}
for name in names:
    spec = importlib.util.spec_from_file_location(name, f"versions/{name}.py")
    mods[name] = sys.modules[name] = importlib.util.module_from_spec(spec); spec.loader.exec_module(mods[name])
print(jax.__version__, jax.devices()[0].device_kind, flush=True)
model = models.Autoencoder(models.model_config(decoder_features=(16, 32)))
params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
params = jax.tree.map(lambda a: a * 3, params)  # logits away from 0 so that most voxels are decided
z = jax.random.normal(jax.random.key(1), (50, 2, 2, 2, 8))
i, j = (jnp.asarray(a) for a in pair_list(50, "all").T)
compiled, ref, same = {}, None, set()
for name in names:
    kw = dict(steps=11, span=(0, 11), activation="relu", launch=MosaicLaunch(), interpret=False)
    t0 = time.perf_counter(); lowered = mods[name]._lerp_decode.lower(params, z, i, j, 0.0, **kw)
    t1 = time.perf_counter(); compiled[name] = lowered.compile()
    t2 = time.perf_counter(); out = np.asarray(jax.block_until_ready(compiled[name](params, z, i, j, 0.0)))
    if ref is None: ref = out
    if (out == ref).all(): same.add(name)
    print(f"{name}: lower {t1-t0:.2f} s, compile {t2-t1:.2f} s; differs from old in {int((out != ref).sum())} of {out.size} words", flush=True)
res = {}
for rnd in range(3):  # interleaved rounds: each variant's median of 5 calls a round
    for name in names:
        runs = []
        for _ in range(5):
            s0 = time.perf_counter(); jax.block_until_ready(compiled[name](params, z, i, j, 0.0)); runs.append(time.perf_counter() - s0)
        res.setdefault(name, []).append(np.median(runs))
for k, v in res.items():
    print(f"{k}: every pair N = 50 (27,500 shapes), medians of 5 in 3 rounds: {' '.join(f'{x*1e3:.2f}' for x in v)} ms; "
          f"median {np.median(v)*1e3:.2f} ms")
# the fastest variant that is bit for bit the old kernel's, for the rest of the call
best = min((n for n in names if n in same), key=lambda n: np.median(res[n]))
print("fastest:", best, flush=True)
