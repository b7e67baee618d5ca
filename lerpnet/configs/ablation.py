"""The training ablation: variants of configs/modelnet_chairs.py:ablation_base, each trained with
several seeds, scored on validation (IoU, voxel rates, val-val interpolation paths).

    python -m benchmarks.ablate_training --config=configs/ablation.py --workdir=runs/ablation \\
        --config.data.path=/path/to/3dshapenets_chair_train_vox30.tar.gz    # or LERPNET_DATA=<its folder>

Writes ablation.csv, ablation.json and ablation.md into the workdir (one row per variant: what it
changes against the base, validation IoU mean and spread over the seeds, ...), and one training
workdir per run under runs/. Rerunning resumes: finished runs are skipped, interrupted ones resume
from their checkpoints. Variants are named in VARIANTS; pick rows with
--config.ablation.variants=base,ema,... (join names with "+" to stack them: combined+dropout).
The default is the main table of results/ablate_training/: its four rows (the base, the first
winner, + translations, and "winner" = configs/modelnet_chairs.py: + the second residual block, the
canonical poses only, the pieces term and the study's decoder widths) x 3 seeds of 6,000 steps, 4
trainings at a time on one GPU. Expected (measured on one NVIDIA H200, jax 0.11.2, float32): validation
IoU 0.704 +- 0.000, 0.726 +- 0.002, 0.761 +- 0.003 and, for the winner before the pieces term and the
study's decoder widths, 0.803 +- 0.001 (0.768 +- 0.001 for combined+residual2, the same with all 12 poses);
with the pieces term 0.795 +- 0.003 (on an H100, results/ablate_training/pieces/three_seeds/), and with the
study's decoder widths too, the winner now, 0.783 +- 0.002 (an H100,
results/ablate_training/study_decoder_pieces/), with the path scores of results/ablate_training/README.md. Those runs took 250 to 330 s each (a row's mean)
with four or five trainings sharing the GPU, so the 12 runs should take three rounds of that, about
15 minutes with their path scores (an estimate: this default was not run as one command).
Smoke variant (2 rows x 2 seeds of a tiny model on procedural chairs, seconds on a CPU):
--config=configs/ablation.py:smoke
"""

import ml_collections

from lerpnet.configs import default, modelnet_chairs

# Row name -> the config fields it changes against the base (flattened names, as on the command line).
VARIANTS = {
    "base": {},
    "ema": {"train.ema_decay": 0.999},
    "residual": {"model.encoder_blocks": 1},
    "residual2": {"model.encoder_blocks": 2},
    "wide_encoder": {"model.encoder_features": (96, 192)},
    "deep_encoder": {"model.encoder_features": (64, 128, 128)},
    # the study's decoder widths, which the Mosaic lerp_decode kernel runs (Algorithm 1 decodes every in-between shape);
    # the winner has them, "winner+wide_decoder" the base's (64, 64)
    "study_decoder": {"model.decoder_features": (16, 32)},
    "wide_decoder": dict(modelnet_chairs.WIDE_DECODER),
    "translate": {"augment.max_shift": 2},
    "erase": {"augment.erase_prob": 0.5},
    "no_mirror": {"augment.mirror_axis": -1},
    "canonical_poses": {"data.rotations": "canonical"},
    "dice": {"loss.overlap_weight": 1.0, "loss.tversky_alpha": 0.5, "loss.tversky_beta": 0.5},  # Tversky at 0.5/0.5
    "tversky": {"loss.overlap_weight": 1.0, "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7},
    "pos_weight_4": {"loss.pos_weight": 4.0},
    "focal": {"loss.name": "focal"},
    "dropout": {"model.encoder_dropout": 0.1},
    "latent_noise": {"train.latent_noise": 0.1},
    "weight_decay": {"train.weight_decay": 1e-2},
    "constant_lr": {"train.schedule": "constant"},  # no warm-up or cosine decay (the best checkpoint is kept either way)
    "steps12k": {"train.num_steps": 12000},  # twice the schedule: the winner's IoU still rose at 6,000 steps
    "acai": {"acai.weight": 0.5},
    # one part of the winner taken out again (the leave-one-out rows: "winner+no_ema", ...)
    "no_ema": {"train.ema_decay": 0.0},
    "no_residual": {"model.encoder_blocks": 0},
    "no_overlap": {"loss.overlap_weight": 0.0},
    "no_translate": {"augment.max_shift": 0},
    "no_pieces": {"pieces.weight": 0.0},  # "winner+no_pieces": the winner before the pieces term (0.803)
    "morph": {"morph.weight": 1.0},  # decoded latent mixes trained toward their endpoints' distance-field morph
    "morph_half": {"morph.weight": 0.5},
    # the pace term: paths between batch partners penalised for uneven change and detours (lerpnet.pace)
    "pace003": {"pace.weight": 0.03},
    "pace01": {"pace.weight": 0.1},
    "pace03": {"pace.weight": 0.3},
    "pace1": {"pace.weight": 1.0},
    "pace3": {"pace.weight": 3.0},
    "sharp4": {"pace.sharpness": 4.0},  # the pace term on sigmoid(4 x logit): near the thresholded shapes
    "sharp8": {"pace.sharpness": 8.0},
    # the pieces term: decoded latent mixes pushed to empty outside their largest part, their occupancy
    # held up (lerpnet.pieces)
    "pieces03": {"pieces.weight": 0.3},
    "pieces1": {"pieces.weight": 1.0},
    "pieces_at_07": {"pieces.threshold": 0.7},  # at the winner's chosen threshold (e.g. "pieces1+pieces_at_07")
    # distance-softened targets: the best logit is scale x the signed distance (lerpnet.losses)
    "soft1": {"loss.distance_scale": 1.0},
    "soft2": {"loss.distance_scale": 2.0},
    "soft4": {"loss.distance_scale": 4.0},
    # the first winner (EMA, residual block, Tversky), on which the later rows stack ("ema_residual_tversky+translate")
    "ema_residual_tversky": {"train.ema_decay": 0.999, "model.encoder_blocks": 1, "loss.overlap_weight": 1.0,
                             "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7},
    # the second (+ translations), on which the rows "combined+morph", "combined+soft1", ... stack
    "combined": {"train.ema_decay": 0.999, "model.encoder_blocks": 1, "loss.overlap_weight": 1.0,
                 "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7, "augment.max_shift": 2},
    # what configs/modelnet_chairs.py adds to the base: combined+residual2+canonical_poses+pieces03+study_decoder
    "winner": dict(modelnet_chairs.WINNER),
}
DEFAULT_ROWS = "base,ema_residual_tversky,combined,winner"  # the main table of results/ablate_training/


def changes(row: str) -> dict:
    """The config fields a row changes against the base: a VARIANTS name, or names joined by '+' applied
    in that order (e.g. "combined+dropout": the winner with encoder dropout)."""
    parts = row.split("+")
    unknown = [p for p in parts if p not in VARIANTS]
    if unknown:
        raise ValueError(f"ablation.variants: {row!r} names unknown variants {unknown}; known: {', '.join(VARIANTS)}"
                         " (join names with '+' to combine them)")
    fields = {}
    for part in parts:
        fields.update(VARIANTS[part])
    return fields


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
    if variant and variant != "smoke":
        raise ValueError(f"unknown variant {variant!r} of configs/ablation.py (known: smoke)")
    config = modelnet_chairs.get_config("ablation_base")
    config.train.update(eval_every=500, checkpoint_every=1000, max_checkpoints=2, progress=False)
    config.ablation = ml_collections.ConfigDict(
        dict(
            variants=DEFAULT_ROWS,  # comma-separated names of VARIANTS, one row each
            seeds=3,  # runs per row, with config seeds seed, seed + 1, ...
            parallel=4,  # trainings at a time (separate processes sharing the accelerator)
            memory_fraction=0.22,  # XLA_PYTHON_CLIENT_MEM_FRACTION of each training process
            path_shapes=84,  # validation shapes whose unique pairs are decoded and scored (0 = no path scores)
            path_steps=11,  # t = 0, 0.1, ..., 1
            time_limit_s=0.0,  # start no new run after this long (a rerun does the rest); 0 = no limit
        )
    )
    if variant == "smoke":
        config.data = default.get_config().data
        config.data.num_shapes = 24
        default.smoke(config)
        config.train.update(num_steps=4, eval_every=4, checkpoint_every=4)
        config.ablation.update(variants="base,tversky", seeds=2, parallel=2, memory_fraction=0.0, path_shapes=5,
                               path_steps=5, time_limit_s=0.0)
    return config
