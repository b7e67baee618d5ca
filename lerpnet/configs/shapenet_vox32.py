"""ShapeNetVox32 chairs (the 32^3 .binvox release of 3D-R2N2), turned z-up; on a GPU.

    python -m experiments.train --config=configs/shapenet_vox32.py --workdir=runs/shapenet_vox32 \\
        --config.data.path=/path/to/ShapeNetVox32

The data is the ShapeNetVox32 folder (6,778 chairs in the full download), from --config.data.path=...
or LERPNET_DATA.
Expected: not measured yet (no run on the full ShapeNetVox32 has been made); the tests train the
smoke variant on a 6-chair sample.
Smoke variant (a few steps on a handful of chairs, for tests): --config=configs/shapenet_vox32.py:smoke
"""

import ml_collections

from lerpnet.configs import default
from lerpnet import train
from lerpnet.data import dataset_config


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    config = train.default_config()
    config.data = dataset_config(source="shapenet_vox32", category="chair")  # path: LERPNET_DATA or --config.data.path
    config.train.update(batch_size=128, num_steps=20000, learning_rate=2e-3, warmup_steps=500, log_every=200,
                        eval_every=1000, checkpoint_every=2000, eval_batch_size=128)
    if variant == "smoke":
        config.data.val_fraction = 0.2
        default.smoke(config)
    elif variant:
        raise ValueError(f"unknown variant {variant!r} of configs/shapenet_vox32.py (known: smoke)")
    return config
