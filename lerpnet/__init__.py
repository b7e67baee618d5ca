"""lerpnet: latent interpolation between 3D voxel shapes with JAX, Flax and Pallas.

`lerpnet.interpolate` and `lerpnet.interpolate_pairs` are the all-pairs interpolation API
(`lerpnet.interpolation`); `lerpnet.data` reads, writes and generates voxel shapes.
"""

from lerpnet import data
from lerpnet.ops.lerp.api import interpolate, interpolate_pairs

__all__ = ["data", "interpolate", "interpolate_pairs"]
