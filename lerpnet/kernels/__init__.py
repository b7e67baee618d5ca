"""Pallas GPU kernels for all-pairs latent interpolation (lerpnet.interpolation selects among them).

- `lerp_smem`: Mosaic GPU, latent tiles staged in shared memory with TMA copies (backend "pallas").
- `lerp_global`: Mosaic GPU, latents read from global memory for every output ("pallas_global").
- `lerp_triton`: Triton-lowered `pallas_call` ("pallas_triton").
Each module has `all_pairs(z, steps=...)` and `pairs(a, b, steps=...)` on (rows, 64) latents.
"""
