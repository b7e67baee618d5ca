"""lerpnet: latent interpolation between 3D voxel shapes with JAX, Flax and Pallas.

`lerpnet.interpolate` and `lerpnet.interpolate_pairs` are the all-pairs interpolation op
(`lerpnet.ops.lerp`); `lerpnet.lerp_decode` and `lerpnet.lerp_decode_all_pairs` fold it into the
decoder, to thresholded, bit-packed shapes (`lerpnet.ops.lerp_decode`); `lerpnet.data` reads,
writes and generates voxel shapes.
"""

from lerpnet import data
from lerpnet.ops.lerp import interpolate, interpolate_pairs
from lerpnet.ops.lerp_decode import lerp_decode, lerp_decode_all_pairs

__all__ = ["data", "interpolate", "interpolate_pairs", "lerp_decode", "lerp_decode_all_pairs"]
