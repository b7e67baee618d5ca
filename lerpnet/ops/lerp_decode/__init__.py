"""Interpolate-and-decode in one pass: `lerp_decode`, `lerp_decode_all_pairs` and their implementations."""

from lerpnet.ops.lerp_decode.api import lerp_decode, lerp_decode_all_pairs  # noqa: F401
