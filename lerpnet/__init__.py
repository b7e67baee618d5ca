"""lerpnet: latent interpolation between 3D voxel shapes with JAX, Flax and Pallas.

The notebook API (`lerpnet.trained`):
- `lerpnet.load(run)`: a trained run as an object with `encode`, `decode`, `reconstruct`, `interpolate`;
- `lerpnet.load_shapes(paths)`: voxel or mesh files as z-up 32^3 bool grids.
The ops (`lerpnet.ops`): `interpolate` / `interpolate_pairs` (all-pairs latent interpolation) and
`lerp_decode` / `lerp_decode_all_pairs` (interpolation folded into the decoder, to bit-packed shapes).
The all-pairs function: `score_pairs` (`lerpnet.allpairs`), every pair's path decoded and scored.
Modules: `data` (files, datasets, procedural chairs), `models` (the autoencoder), `layers` (its fast
convolution forms), `steps` (the pure training steps), `train` (the training loop), `workdir` (a
training run on disk), `export` (meshes, strips, GIFs), `render` (pictures), `bitpack`.
"""

from lerpnet import bitpack, data, export, layers, models, render, steps, train, workdir
from lerpnet.allpairs import score_pairs
from lerpnet.ops.lerp import interpolate, interpolate_pairs
from lerpnet.ops.lerp_decode import lerp_decode, lerp_decode_all_pairs
from lerpnet.trained import TrainedAutoencoder, load, load_shapes

__all__ = [
    "TrainedAutoencoder",
    "bitpack",
    "data",
    "export",
    "interpolate",
    "interpolate_pairs",
    "layers",
    "lerp_decode",
    "lerp_decode_all_pairs",
    "load",
    "load_shapes",
    "models",
    "render",
    "score_pairs",
    "steps",
    "train",
    "workdir",
]
