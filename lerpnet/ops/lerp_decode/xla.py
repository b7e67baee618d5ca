"""lerp_decode's fused math in one jit: lerp after the affine first layer, bf16 sub-pixel transposed
convolutions (lerpnet.layers), threshold and pack, `chunk` pairs at a time under `lax.map`.

The fast non-Pallas formulation, and the Triton kernel's reference on the device.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from lerpnet import layers, models
from lerpnet.bitpack import pack_voxels
from lerpnet.ops.common import Launch, step_weights
from lerpnet.ops.lerp_decode.common import decoder_params, fc_rows


@dataclasses.dataclass(frozen=True)
class XlaLaunch(Launch):
    """`chunk` pairs decoded per step of the `lax.map` (bounds the activations held at once)."""

    chunk: int = 256


LAUNCH = XlaLaunch


def default_launch(params) -> XlaLaunch:
    """The launch `lerp_decode` runs when given none: the same chunk at every width."""
    del params
    return XlaLaunch()


def _map_pair_chunks(decode, i: jax.Array, j: jax.Array, chunk: int) -> jax.Array:
    """`decode(i_c, j_c)` -> (len(i_c), ...) over the pairs in chunks of `chunk` under `lax.map` (the last
    chunk padded with the pair (0, 0)), so one chunk's intermediates live at a time: (P, ...). At most
    `chunk` pairs: one direct call, nothing padded."""
    p = i.shape[0]
    if chunk >= p:
        return decode(i, j)
    pad = -p % chunk
    ij = jnp.stack([jnp.pad(i, (0, pad)), jnp.pad(j, (0, pad))], -1).reshape(-1, chunk, 2)
    out = jax.lax.map(lambda c: decode(c[:, 0], c[:, 1]), ij)
    return out.reshape(-1, *out.shape[2:])[:p]


@functools.partial(jax.jit, static_argnames=("steps", "span", "activation", "launch"))
def _lerp_decode(params, z, i, j, logit, *, steps: int, span: tuple[int, int], activation: str,
                 launch: XlaLaunch) -> jax.Array:
    dec = decoder_params(params)
    act = models.ACTIVATIONS[activation]
    h = fc_rows(params, z)
    first, stop = span
    u, t = (w[None, :, None, None, None, None] for w in step_weights(jnp.arange(first, stop), steps))
    w1, w2 = (dec[name]["kernel"].astype(jnp.bfloat16) for name in ("up1", "up2"))

    def one_chunk(i_c, j_c):
        x = act(u * h[i_c][:, None] + t * h[j_c][:, None])
        x = x.reshape(-1, *h.shape[1:]).astype(jnp.bfloat16)
        x = act(layers.subpixel_conv_transpose(x, w1, 2) + dec["up1"]["bias"].astype(jnp.bfloat16))
        logits = layers.subpixel_conv_transpose(x, w2, 2)[..., 0].astype(jnp.float32) + dec["up2"]["bias"][0]
        return pack_voxels(logits > logit).reshape(len(i_c), stop - first, 32, 32)

    return _map_pair_chunks(one_chunk, i, j, launch.chunk)


def lerp_decode(model: models.Autoencoder, params, z, i, j, *, steps: int, span: tuple[int, int], logit: float,
                launch: XlaLaunch) -> jax.Array:
    """Packed (P, stop - first, 32, 32), the model's activation, bf16 convolutions. `launch`: the caller's,
    or `default_launch(params)` as `api.resolve_launch` picks it."""
    return _lerp_decode(params, z, i, j, logit, steps=steps, span=span, activation=model.config.activation,
                        launch=launch)
