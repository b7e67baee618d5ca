"""The 2018 study's exact autoencoder on the ModelNet chairs: encoder widths (32, 16), decoder
widths (16, 32), relu, no normalisation, the 2x2x2x8 latent (lerpnet.models' defaults), trained
with configs/modelnet_chairs.py's `:ablation_base` recipe (no EMA, no overlap loss, no ACAI).

    python -m experiments.train --config=configs/study.py --workdir=runs/study \\
        --config.data.path=/path/to/3dshapenets_chair_train_vox30.tar.gz

Expected (measured on one NVIDIA H100 80GB HBM3, jax 0.11.2, float32; results/train_study/): validation
IoU@0.5 0.675 after 6,000 steps of 128 shapes (best 0.676 at step 5,000), 41,983 shapes/s, 67 s for the
whole command, where the 64-wide `:ablation_base` reaches 0.704.
Smoke variant (a few steps of a tiny model, for tests): --config=configs/study.py:smoke
"""

import ml_collections

from lerpnet import models
from lerpnet.configs import default, modelnet_chairs

STUDY_FIELDS = ("encoder_features", "latent_features", "decoder_features", "kernel_size", "activation", "norm",
                "encoder_blocks", "encoder_dropout")


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    if variant and variant != "smoke":
        raise ValueError(f"unknown variant {variant!r} of configs/study.py (known: smoke)")
    config = modelnet_chairs.get_config("ablation_base")
    study = models.model_config()
    config.model.update({field: study[field] for field in STUDY_FIELDS})
    if variant == "smoke":
        config.data.rotations = "canonical"
        default.smoke(config)
    return config
