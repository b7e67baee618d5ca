"""End-to-end interpolation (the 2018 study's Algorithm 1): decode, score and show every pair's path.

    lerpnet-interpolate --config=configs/interpolate.py[:VARIANT] --workdir=DIR \
        --config.checkpoint_dir=RUN [voxel files ...]

(`python -m experiments.interpolate` is the same program.) RUN is a trained run's workdir (from
`lerpnet-train`; its config.json says which model and dataset) or one of its `checkpoints/<step>`
folders. Voxel files after the flags replace the dataset's shapes. Rerunning on the same DIR
resumes: finished blocks are kept, and a rerun with other settings or another model is refused.

The decoder is the fused lerp-decode (`lerpnet.ops.lerp_decode`: on a Hopper GPU the Mosaic GPU kernel
where it covers the model's widths, else on a GPU the Triton kernel, the fused XLA jit elsewhere;
`--config.implementation=reference` runs the unfused model decoder); each
distinct shape is decoded once whatever the pair mode. A voxel is full where sigmoid(logit) >
threshold, the run's own threshold (its threshold.json, else 0.5) unless `--config.threshold` says.

Variants:
- (none): 50 shapes of the run's dataset (validation first, then training), every unique pair.
- `smoke`: 6 shapes, 5 steps, blocks of 8 pairs; what the tests run. On a CPU from a clean checkout
  (2 cores: under a minute each; the interpolation writes 15 paths between 6 shapes, 2 blocks):
    lerpnet-train --config=configs/default.py:smoke --workdir=runs/smoke
    lerpnet-interpolate --config=configs/interpolate.py:smoke --workdir=runs/interp_smoke \
        --config.checkpoint_dir=runs/smoke
- `demo`: the 16 first validation chairs, every unique pair, 4 exported paths: the pictures that
  `python -m experiments.demo` (`bin/train`) ends with.
- `modelnet_study`: N = 50 ModelNet chairs, all 2,500 ordered pairs x 11 steps = 27,500 decoded
  shapes (the study's size), timed end to end (encode + decode + threshold + pack + score; median
  of 5 after 1 warm-up) in summary.json["end_to_end"]. One H100, the configs/modelnet_chairs.py
  model (decoder widths (16, 32), the Mosaic GPU kernel): 9.9 ms end to end, 18.0 s for the whole command
  with a cold compilation cache (results/interpolate/n50); 7.8 to 9.7 ms on other H100s
  (results/interpolate/study_decoder_h100, results/interpolate/compile_while_reading). Its `:wide_decoder`
  (64, 64), the Triton kernel: 35.7 ms (results/wide_decoder/interpolate/n50).
- `modelnet_chairs`: N = 200 ModelNet chairs: every validation chair (84) plus training chairs,
  each labelled with its split; all 19,900 unique pairs in pairs.csv, medians per split pair in
  summary_by_split.md, figures (figure6.png, topk.png, exports/). One H100: 16.1 s for the whole
  command (results/interpolate/n200).
- `modelnet_wall`: N = 1000, every ordered pair: 11 million decoded shapes in 8 GiB blocks, timed
  (the persisted run warms up, then 2 timed repeats). ModelNet has only 839 distinct chairs, so
  this run takes the validation chairs, the canonical training chairs, then training chairs in
  ModelNet's other 11 poses (split "rotated"); novelty is scored against the canonical training
  chairs. One H100, the configs/modelnet_chairs.py model: 1.84 s end to end, 26.0 s for the whole command
  on a fresh machine after the N = 50 and 200 ones, 3.7 s of it the two timed repeats
  (results/interpolate/n1000); its
  `:wide_decoder` (64, 64): 10.52 s end to end (results/wide_decoder/interpolate/n1000). The configs/study.py
  model (decoder widths (16, 32)), --config.timing.repeats=0, another H100, the Mosaic GPU kernel: 22.1 s with
  a cold cache, 12.6 s warm (median of 3), 2.73 s of it the stream
  (results/interpolate/n1000_study_mosaic_default; the Triton kernel in the same call: 24.2 s and 12.4 s).
  A model of the configs/modelnet_chairs.py recipe before the pieces term (decoder widths (16, 32)),
  --config.timing.repeats=0, score_pairs compiled while the shapes are read: 17.6 s with a cold cache,
  10.0 and 10.3 s warm, 1.84 s of it the stream (results/interpolate/compile_while_reading).
On a GPU (RUN = the trained ModelNet chairs run, e.g. configs/modelnet_chairs.py):
    lerpnet-interpolate --config=configs/interpolate.py:modelnet_study --workdir=runs/interp_n50 \
        --config.checkpoint_dir=RUN
and likewise `:modelnet_chairs` (runs/interp_n200) and `:modelnet_wall` (runs/interp_n1000).
Add `--config.data_path=...` if the dataset is not where the run was trained from.
"""

import ml_collections

from lerpnet import config_checks
from lerpnet.allpairs.shapes import PAIR_MODES
from lerpnet.ops.lerp_decode import IMPLEMENTATIONS


# Variant -> the fields it changes against the defaults (flattened names, as on the command line).
VARIANTS = {
    "smoke": {"num_shapes": 6, "steps": 5, "block_pairs": 8, "memory_budget_mb": 512.0, "encode_batch": 8,
              "top_k": 2, "export.count": 1, "export.image_size": 64, "progress": False},
    # what `experiments.demo` (bin/train) draws: the validation chairs' paths
    "demo": {"shapes.split": "val", "num_shapes": 16, "top_k": 6, "export.count": 4},
    "modelnet_study": {"num_shapes": 50, "pairs": "all", "write_csv": False, "timing.repeats": 5,
                       "timing.warmup": 1},
    "modelnet_chairs": {"num_shapes": 200, "top_k": 12, "export.count": 6},
    "modelnet_wall": {"num_shapes": 1000, "pairs": "all", "shapes.rotations": "all",
                      "shapes.split": "val+train+rotated", "write_csv": False, "timing.repeats": 2,
                      "timing.warmup": 0,  # the persisted run before it is the warm-up
                      "export.count": 1},
}


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    if variant and variant not in VARIANTS:
        *first, last = VARIANTS
        raise ValueError(f"unknown variant {variant!r}: expected {', '.join(map(repr, ['', *first]))} or {last!r}")
    cfg = ml_collections.ConfigDict()
    cfg.checkpoint_dir = ""  # the trained run: its workdir (config.json + checkpoints), latest step
    cfg.checkpoint_step = -1  # a particular checkpoint step of that run (-1 = the latest)
    cfg.data_path = ""  # where the run's dataset lives on this machine ("" = the path the run used)

    cfg.shapes = ml_collections.ConfigDict()
    cfg.shapes.source = "split"  # "split" | "ids" | "files" (files on the command line imply "files")
    cfg.shapes.split = "val+train"  # splits joined by '+', taken in that order
    cfg.shapes.ids = ""  # comma-separated ids of the run's dataset (source "ids")
    cfg.shapes.files = ""  # comma-separated voxel files (source "files")
    cfg.shapes.up_axis = ""  # the files' up axis: "y", "z", or "" = each file's own (y for ShapeNet's model.binvox)
    cfg.shapes.rotations = "canonical"  # "all": also draw from modelnet's 12 rotations of training shapes
    cfg.num_shapes = 50  # N, a cap on the split (0 = all of it)

    cfg.pairs = "unique"  # "unique": i < j; "all": every ordered pair (i, i) included, N*N paths
    cfg.steps = 11  # t = 0, 0.1, ..., 1 (2: the paths are the two shapes alone)
    # A voxel is full where sigmoid(logit) > threshold; None = the run's stored threshold (else 0.5).
    cfg.threshold = ml_collections.config_dict.placeholder(float)
    # lerpnet.ops.lerp_decode's implementation: "auto" (its default: on a Hopper GPU "mosaic" where it covers the
    # model, on a GPU "triton" where it covers it, else "xla") | "triton" | "mosaic" | "xla" | "reference"
    cfg.implementation = "auto"
    cfg.dtype = "float32"  # the latents' dtype: "float32" | "bfloat16"
    cfg.memory_budget_mb = 8192.0  # per device: the block step's arguments, outputs and temporaries
    cfg.block_pairs = 0  # pairs per block (a multiple of the device count); 0 = largest within budget
    cfg.num_devices = 0  # 0 = every local device; pairs are sharded across them
    cfg.encode_batch = 256

    cfg.monotonic_tolerance = 0.01  # an IoU change below this does not count as going the wrong way
    cfg.plausible = ml_collections.ConfigDict()  # what a midpoint must satisfy to count as a shape
    cfg.plausible.min_smoothness = 0.5  # no step between consecutive shapes below this IoU
    cfg.plausible.min_endpoint_iou = 0.5  # both inputs reconstructed at least this well
    cfg.plausible.occupancy_range = (0.5, 2.0)  # midpoint occupancy within these multiples of the inputs'
    cfg.plausible.min_largest_part = 0.95  # fraction of the midpoint's voxels in one connected piece
    cfg.top_k = 8  # most novel plausible midpoints to report and draw
    cfg.top_k_per_shape = 1  # diverse top-k: a shape in at most this many of its pairs

    cfg.export = ml_collections.ConfigDict()
    cfg.export.pairs = ""  # "idA:idB,idC:idD"; "" = shapes (0, 1), (2, 3), ...: `count` unchosen pairs
    cfg.export.count = 3
    cfg.export.mesh_formats = "obj,ply"
    cfg.export.image_size = 160

    cfg.write_csv = True  # pairs.csv, one row a path (pairs.npz is always written)
    cfg.timing = ml_collections.ConfigDict()
    cfg.timing.repeats = 0  # > 0: also time the whole computation end to end this many times
    cfg.timing.warmup = 1
    cfg.progress = True

    cfg.update_from_flattened_dict(VARIANTS.get(variant, {}))
    return cfg


def _threshold(value):
    """None (the run's own) or a probability strictly between 0 and 1."""
    if value is None or config_checks.number(0.0, 1.0, low_open=True, high_open=True)(value) is None:
        return None
    return "must be strictly between 0 and 1 (or None: the run's own threshold)"


def _pair_of(rule):
    return lambda value: config_checks.each(rule, min_length=2)(value) or (
        None if len(value) == 2 else "must be a pair (low, high)")


_FRACTION = config_checks.number(0.0, 1.0)
RULES = {
    "checkpoint_step": config_checks.integer(-1),
    "num_shapes": config_checks.integer(0),
    "shapes.source": config_checks.one_of(("split", "ids", "files")),
    "shapes.up_axis": config_checks.one_of(("", "y", "z")),
    "shapes.rotations": config_checks.one_of(("canonical", "all")),
    "pairs": config_checks.one_of(PAIR_MODES),
    "steps": config_checks.integer(2),
    "threshold": _threshold,
    "implementation": config_checks.one_of((None, "auto", *IMPLEMENTATIONS)),
    "dtype": config_checks.one_of(("float32", "bfloat16")),
    "memory_budget_mb": config_checks.number(0.0, low_open=True),
    "block_pairs": config_checks.integer(0),
    "num_devices": config_checks.device_count(),
    "encode_batch": config_checks.integer(1),
    "monotonic_tolerance": config_checks.number(0.0, 1.0, high_open=True),
    "plausible.min_smoothness": _FRACTION,
    "plausible.min_endpoint_iou": _FRACTION,
    "plausible.occupancy_range": _pair_of(config_checks.number(0.0)),
    "plausible.min_largest_part": _FRACTION,
    "top_k": config_checks.integer(0),
    "top_k_per_shape": config_checks.integer(1),
    "export.count": config_checks.integer(0),
    "export.image_size": config_checks.integer(1),
    "timing.repeats": config_checks.integer(0),
    "timing.warmup": config_checks.integer(0),
}


def check(config: ml_collections.ConfigDict) -> None:
    """Every field of an interpolate config known, of its default's type and in range, before any work:
    a one-line ConfigError (a ValueError) naming the first that is not."""
    config_checks.check_config(config, get_config(), RULES)
