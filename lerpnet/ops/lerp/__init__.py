"""All-pairs latent interpolation: `interpolate`, `interpolate_pairs` and their implementations."""

from lerpnet.ops.lerp.api import IMPLEMENTATIONS, default_implementation, interpolate, interpolate_pairs

__all__ = ["IMPLEMENTATIONS", "default_implementation", "interpolate", "interpolate_pairs"]
