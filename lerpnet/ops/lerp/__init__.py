"""All-pairs latent interpolation: `interpolate`, `interpolate_pairs` and their implementations."""

from lerpnet.ops.lerp.api import *  # noqa: F401,F403
from lerpnet.ops.lerp.api import interpolate, interpolate_pairs  # noqa: F401
