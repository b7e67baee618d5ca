"""The conv3d voxel autoencoder: 32^3 occupancy -> a 2x2x2x8 latent (64 numbers) -> 32^3 logits.

Channels-last (NDHWC). The strided convolutions hold exactly the parameters of
`flax.linen.Conv` / `flax.linen.ConvTranspose(padding='SAME')` (DHWIO kernels, `bias`), but by
default run them in a sub-pixel formulation that XLA executes much faster:

* a stride-s convolution is a space-to-depth of its padded input followed by a stride-1
  convolution with ceil(k/s) taps per axis (the kernel regrouped, zero-filled where k < s*taps);
* a stride-s transposed convolution is a stride-1 convolution producing s^3 times the channels
  (one output channel group per output parity, the kernel regrouped the same way) followed by a
  depth-to-space.

XLA's own lowering of these strided and input-dilated convolutions is slow on CPU (the plain Flax
transposed convolution 16^3x32 -> 32^3x1 takes ~0.6 s per shape on a 2-core CPU) and on GPU.
`implementation="flax"` runs the plain Flax layers on the same parameters; tests hold the two equal.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

IMPLEMENTATIONS = ("subpixel", "flax")
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "leaky_relu": nn.leaky_relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
}
# Encoder normalisation only. Batch norm is left out on purpose: it would make `encode` depend on
# the batch and add mutable state; group/layer norm give the same training help without either.
NORMS = ("none", "group", "layer")
_DIMS = ("NDHWC", "DHWIO", "NDHWC")


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The default model: the 2018 study's widths, relu, no normalisation, sub-pixel convolutions."""
    cfg = ml_collections.ConfigDict(
        dict(
            encoder_features=(32, 16),  # the two stride-2 convolutions: 32^3 -> 16^3 -> 8^3
            latent_features=8,  # the final k4 s4 VALID convolution: 8^3 -> 2^3 x latent_features
            decoder_features=(16, 32),  # fc -> 8^3 x [0]; up1 -> 16^3 x [1]; up2 -> 32^3 x 1
            kernel_size=4,
            activation="relu",
            norm="none",
            implementation="subpixel",
            dtype="float32",  # compute dtype; parameters are always float32
        )
    )
    cfg.update(overrides)
    return cfg


def _param_groups(kernel_size: int, stride: int, pad_before: int, transposed: bool):
    """Per-axis regrouping of a k-tap strided kernel into (taps, parity) for the stride-1 form.

    Returns (select, lo, hi): `select[k, j, r] = 1` where original tap k feeds tap j of parity r
    of the stride-1 kernel, and the (lo, hi) padding of the stride-1 convolution's input.
    """
    if transposed:
        # y[s*m + r] = sum_k W[k] x[m + d], d = (r + k - pad_before) / s where that is an integer
        # (lax.conv_transpose: the input dilated by s, padded by pad_before, correlated with W).
        pairs = [(k, r, (r + k - pad_before) // stride) for r in range(stride) for k in range(kernel_size)
                 if (r + k - pad_before) % stride == 0]
        offsets = [d for _, _, d in pairs]
        lo, hi = -min(offsets), max(offsets)
        select = np.zeros((kernel_size, lo + hi + 1, stride), np.float32)
        for k, r, d in pairs:
            select[k, d + lo, r] = 1.0
        return select, lo, hi
    # y[m] = sum_k W[k] xp[s*m + k], k = s*q + r: tap q of the space-to-depth input's parity r.
    taps = -(-kernel_size // stride)
    select = np.zeros((kernel_size, taps, stride), np.float32)
    for k in range(kernel_size):
        select[k, k // stride, k % stride] = 1.0
    return select, 0, 0


def subpixel_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (s,)*3, padding)` (NDHWC, DHWIO) as space-to-depth + conv."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    b, n = x.shape[0], x.shape[1]
    if padding == "SAME":
        out = -(-n // stride)
        total = max((out - 1) * stride + k - n, 0)
        pad = (total // 2, total - total // 2)
    else:
        out = (n - k) // stride + 1
        pad = (0, 0)
    select, _, _ = _param_groups(k, stride, 0, transposed=False)
    taps = select.shape[1]
    length = stride * (out + taps - 1)  # what the regrouped stride-1 VALID convolution consumes
    x = x[:, : length - pad[0], : length - pad[0], : length - pad[0]]
    hi = length - pad[0] - x.shape[1]
    x = jnp.pad(x, [(0, 0)] + [(pad[0], hi)] * 3 + [(0, 0)])
    blocks = length // stride
    x = x.reshape(b, blocks, stride, blocks, stride, blocks, stride, cin)
    x = x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, blocks, blocks, blocks, stride**3 * cin)
    s = jnp.asarray(select, kernel.dtype)
    # w[q1, q2, q3, (r1, r2, r3, i), o] = W[s*q1 + r1, s*q2 + r2, s*q3 + r3, i, o] (0 past k).
    w = jnp.einsum("adgio,abc,deh,gjk->bejchkio", kernel, s, s, s)
    w = w.reshape(taps, taps, taps, stride**3 * cin, cout)
    if taps == 1:  # kernel size == stride: a plain matmul over blocks
        return jnp.einsum("bxyzi,io->bxyzo", x, w[0, 0, 0])
    return lax.conv_general_dilated(x, w, (1, 1, 1), "VALID", dimension_numbers=_DIMS)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s,)*3, 'SAME')` (NDHWC, DHWIO) as conv + depth-to-space."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    b, n = x.shape[0], x.shape[1]
    pad_len = k + stride - 2  # lax._conv_transpose_padding for 'SAME'
    pad_before = k - 1 if stride > k - 1 else -(-pad_len // 2)
    select, lo, hi = _param_groups(k, stride, pad_before, transposed=True)
    taps = select.shape[1]
    s = jnp.asarray(select, kernel.dtype)
    # w[j1, j2, j3, i, r1, r2, r3, o] = W[k1, k2, k3, i, o] where tap k_a feeds (j_a, r_a).
    w = jnp.einsum("adgio,abc,deh,gjk->bejichko", kernel, s, s, s)
    w = w.reshape(taps, taps, taps, cin, stride**3 * cout)
    y = lax.conv_general_dilated(x, w, (1, 1, 1), [(lo, hi)] * 3, dimension_numbers=_DIMS)
    y = y.reshape(b, n, n, n, stride, stride, stride, cout)
    return y.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, n * stride, n * stride, n * stride, cout)


class StridedConv(nn.Module):
    """A 3D convolution with `flax.linen.Conv`'s parameters, run plainly or sub-pixel."""

    features: int
    kernel_size: int
    stride: int
    padding: str = "SAME"
    implementation: str = "subpixel"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
        if self.implementation == "flax":
            layer = nn.Conv(self.features, (k, k, k), (self.stride,) * 3, self.padding, dtype=self.dtype)
            return layer.apply({"params": {"kernel": kernel, "bias": bias}}, x)
        return subpixel_conv(x, kernel, self.stride, self.padding) + bias


class StridedConvTranspose(nn.Module):
    """A 3D transposed convolution with `flax.linen.ConvTranspose(padding='SAME')`'s parameters."""

    features: int
    kernel_size: int
    stride: int
    implementation: str = "subpixel"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = x.astype(self.dtype), kernel.astype(self.dtype), bias.astype(self.dtype)
        if self.implementation == "flax":
            layer = nn.ConvTranspose(self.features, (k, k, k), (self.stride,) * 3, "SAME", dtype=self.dtype)
            return layer.apply({"params": {"kernel": kernel, "bias": bias}}, x)
        return subpixel_conv_transpose(x, kernel, self.stride) + bias


def _norm(kind: str, name: str, dtype) -> Callable[[jax.Array], jax.Array]:
    if kind == "none":
        return lambda x: x
    if kind == "group":
        return nn.GroupNorm(num_groups=None, group_size=4, name=name, dtype=dtype)
    if kind == "layer":
        return nn.LayerNorm(name=name, dtype=dtype)
    raise ValueError(f"model.norm must be one of {NORMS}, got {kind!r}")


class Encoder(nn.Module):
    """(B,32,32,32[,1]) occupancy -> (B,2,2,2,latent_features): two k4 s2 SAME convs, one k4 s4 VALID."""

    features: Sequence[int]
    latent_features: int
    kernel_size: int
    activation: str
    norm: str
    implementation: str
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        if x.ndim == 4:
            x = x[..., None]
        x = x.astype(self.dtype)
        conv = functools.partial(StridedConv, kernel_size=self.kernel_size, implementation=self.implementation,
                                 dtype=self.dtype)
        for i, f in enumerate(self.features, start=1):
            x = conv(f, stride=2, padding="SAME", name=f"conv{i}")(x)
            x = act(_norm(self.norm, f"norm{i}", self.dtype)(x))
        n = len(self.features) + 1
        stride = x.shape[1] // 2  # the last conv brings 8^3 down to the 2^3 latent grid
        return conv(self.latent_features, kernel_size=stride, stride=stride, padding="VALID",
                    name=f"conv{n}")(x)


class Decoder(nn.Module):
    """(B,2,2,2,8) latent -> (B,32,32,32) logits. No normalisation: a per-shape pure function."""

    features: Sequence[int]
    kernel_size: int
    activation: str
    implementation: str
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, z):
        act = ACTIVATIONS[self.activation]
        b = z.shape[0]
        c0, c1 = self.features
        h = nn.Dense(8 * 8 * 8 * c0, dtype=self.dtype, name="fc")(z.reshape(b, -1).astype(self.dtype))
        h = act(h).reshape(b, 8, 8, 8, c0)
        up = functools.partial(StridedConvTranspose, kernel_size=self.kernel_size, stride=2,
                               implementation=self.implementation, dtype=self.dtype)
        h = act(up(c1, name="up1")(h))
        return up(1, name="up2")(h)[..., 0]


class Autoencoder(nn.Module):
    """encode: (B,32,32,32) -> z (B,2,2,2,8); decode: z -> logits (B,32,32,32); call = decode(encode)."""

    config: ml_collections.ConfigDict

    def setup(self):
        cfg = self.config
        if cfg.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"model.implementation must be one of {IMPLEMENTATIONS}, got {cfg.implementation!r}")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {tuple(ACTIVATIONS)}, got {cfg.activation!r}")
        if cfg.norm not in NORMS:
            raise ValueError(f"model.norm must be one of {NORMS}, got {cfg.norm!r}")
        dtype = jnp.dtype(cfg.dtype)
        self.encoder = Encoder(tuple(cfg.encoder_features), cfg.latent_features, cfg.kernel_size, cfg.activation,
                               cfg.norm, cfg.implementation, dtype)
        self.decoder = Decoder(tuple(cfg.decoder_features), cfg.kernel_size, cfg.activation, cfg.implementation,
                               dtype)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x):
        return self.decode(self.encode(x))
