"""The two ops of Algorithm 1, each one public function over interchangeable implementations.

- `lerpnet.ops.lerp`: all-pairs (or chosen-pairs) latent interpolation.
- `lerpnet.ops.lerp_decode`: interpolation folded into the decoder, to thresholded, bit-packed shapes.
"""
