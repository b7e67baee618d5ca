"""Interpolate-and-decode in one pass: `lerp_decode`, `lerp_decode_all_pairs` and their implementations."""

from lerpnet.ops.lerp_decode.api import IMPLEMENTATIONS, default_implementation, lerp_decode, lerp_decode_all_pairs
from lerpnet.ops.lerp_decode.mosaic import MosaicLaunch
from lerpnet.ops.lerp_decode.triton import TritonLaunch
from lerpnet.ops.lerp_decode.xla import XlaLaunch

__all__ = ["IMPLEMENTATIONS", "MosaicLaunch", "TritonLaunch", "XlaLaunch", "default_implementation", "lerp_decode",
           "lerp_decode_all_pairs"]
