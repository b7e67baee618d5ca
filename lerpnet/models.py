"""The conv3d voxel autoencoder: 32^3 occupancy -> a 2x2x2x8 latent (64 numbers) -> 32^3 logits.

Channels-last (NDHWC). The strided layers hold exactly the parameters of `flax.linen.Conv` /
`flax.linen.ConvTranspose(padding='SAME')` (DHWIO kernels, `bias`) but run them in a formulation
of lerpnet.layers, which XLA executes far faster than its strided / input-dilated convolutions:

* "auto": "matmul" where a layer has a single input or output channel (measured faster there on
  CPU and on an H100: float32 decoding 315k vs 274k shapes/s, training 41k vs 35k,
  results/perf/README.md), "subpixel" elsewhere;
* "subpixel": every strided layer as space-to-depth / depth-to-space around a stride-1 convolution;
* "flax": the plain Flax layers on the same parameters, the reference the tests hold the others to.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from lerpnet.layers import matmul_conv, matmul_conv_transpose, subpixel_conv, subpixel_conv_transpose

IMPLEMENTATIONS = ("auto", "subpixel", "flax")
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


def model_config(**overrides) -> ml_collections.ConfigDict:
    """The default model: the 2018 study's widths, relu, no normalisation, the fast formulations."""
    cfg = ml_collections.ConfigDict(
        dict(
            encoder_features=(32, 16),  # the two stride-2 convolutions: 32^3 -> 16^3 -> 8^3
            latent_features=8,  # the final k4 s4 VALID convolution: 8^3 -> 2^3 x latent_features
            decoder_features=(16, 32),  # fc -> 8^3 x [0]; up1 -> 16^3 x [1]; up2 -> 32^3 x 1
            kernel_size=4,
            activation="relu",
            norm="none",
            encoder_blocks=0,  # residual blocks (two 3^3 convs) after the encoder's last strided conv
            encoder_dropout=0.0,  # dropout after each encoder stage, in training only
            implementation="auto",  # "auto" | "subpixel" | "flax" (see the module docstring)
            dtype="float32",  # compute dtype; parameters are always float32
        )
    )
    cfg.update(overrides)
    return cfg


def _layer_implementation(implementation: str, cin: int, cout: int) -> str:
    """"auto": matmul where one side has a single channel (measured faster there on CPU and GPU), else subpixel."""
    if implementation == "auto":
        return "matmul" if min(cin, cout) == 1 else "subpixel"
    return implementation


def _declare_params(module: nn.Module, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input, kernel (DHWIO, as flax's Conv and ConvTranspose hold it) and bias in the compute dtype."""
    k = module.kernel_size
    kernel = module.param("kernel", nn.initializers.lecun_normal(), (k, k, k, x.shape[-1], module.features))
    bias = module.param("bias", nn.initializers.zeros_init(), (module.features,))
    return x.astype(module.dtype), kernel.astype(module.dtype), bias.astype(module.dtype)


def _run_layer(module: nn.Module, x: jax.Array, plain: nn.Module, fast: dict[str, Callable]) -> jax.Array:
    """Declare a strided layer's parameters and run it: as the plain Flax layer, or in the formulation
    its implementation picks (fast[name](x, kernel))."""
    x, kernel, bias = _declare_params(module, x)
    impl = _layer_implementation(module.implementation, x.shape[-1], module.features)
    if impl == "flax":
        return plain.apply({"params": {"kernel": kernel, "bias": bias}}, x)
    return fast[impl](x, kernel) + bias


class StridedConv(nn.Module):
    """A 3D convolution holding `flax.linen.Conv`'s parameters, run in the chosen formulation."""

    features: int
    kernel_size: int
    stride: int
    padding: str = "SAME"
    implementation: str = "auto"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k, s, pad = self.kernel_size, self.stride, self.padding
        plain = nn.Conv(self.features, (k, k, k), (s,) * 3, pad, dtype=self.dtype)
        return _run_layer(self, x, plain, {"matmul": lambda x, w: matmul_conv(x, w, s, pad),
                                           "subpixel": lambda x, w: subpixel_conv(x, w, s, pad)})


class StridedConvTranspose(nn.Module):
    """A 3D transposed convolution holding `flax.linen.ConvTranspose(padding='SAME')`'s parameters."""

    features: int
    kernel_size: int
    stride: int
    implementation: str = "auto"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k, s = self.kernel_size, self.stride
        plain = nn.ConvTranspose(self.features, (k, k, k), (s,) * 3, "SAME", dtype=self.dtype)
        return _run_layer(self, x, plain, {"matmul": lambda x, w: matmul_conv_transpose(x, w, s),
                                           "subpixel": lambda x, w: subpixel_conv_transpose(x, w, s)})


def _norm(kind: str, name: str, dtype) -> Callable[[jax.Array], jax.Array]:
    if kind == "none":
        return lambda x: x
    if kind == "group":
        return nn.GroupNorm(num_groups=None, group_size=4, name=name, dtype=dtype)
    if kind == "layer":
        return nn.LayerNorm(name=name, dtype=dtype)
    raise ValueError(f"model.norm must be one of {NORMS}, got {kind!r}")


class ResidualBlock(nn.Module):
    """x -> act(x + conv(act(conv(x)))) with 3^3 stride-1 convs through half the channels.

    The second conv starts at zero, so a new block starts as the identity on the (non-negative,
    activated) input and only adds depth the training finds useful.
    """

    activation: str
    dtype: jnp.dtype

    @nn.compact
    def __call__(self, x):
        act, c = ACTIVATIONS[self.activation], x.shape[-1]
        h = act(nn.Conv(max(c // 2, 1), (3, 3, 3), dtype=self.dtype, name="conv_a")(x))
        h = nn.Conv(c, (3, 3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros_init(), name="conv_b")(h)
        return act(x + h)


class Encoder(nn.Module):
    """(B,32,32,32[,1]) occupancy -> (B,2,2,2,latent_features): k4 s2 SAME convs (one per feature),
    optional residual blocks at the last resolution, then one VALID conv down to the 2^3 grid."""

    features: Sequence[int]
    latent_features: int
    kernel_size: int
    activation: str
    norm: str
    implementation: str
    dtype: jnp.dtype
    blocks: int = 0
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = ACTIVATIONS[self.activation]
        if x.ndim == 4:
            x = x[..., None]
        x = x.astype(self.dtype)
        conv = functools.partial(StridedConv, kernel_size=self.kernel_size, implementation=self.implementation,
                                 dtype=self.dtype)
        drop = (lambda h: nn.Dropout(self.dropout)(h, deterministic=not train)) if self.dropout else (lambda h: h)
        for i, f in enumerate(self.features, start=1):
            x = conv(f, stride=2, padding="SAME", name=f"conv{i}")(x)
            x = drop(act(_norm(self.norm, f"norm{i}", self.dtype)(x)))
        for b in range(1, self.blocks + 1):
            x = drop(ResidualBlock(self.activation, self.dtype, name=f"block{b}")(x))
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
    """encode: (B,32,32,32) -> z (B,2,2,2,8); decode: z -> logits (B,32,32,32); call = decode(encode).

    The decoder is fixed at fc -> up1 -> up2 (what the fused lerp-decode kernel runs); the encoder
    runs once per shape, so its depth and width are free for Algorithm 1.
    """

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
                               cfg.norm, cfg.implementation, dtype, cfg.encoder_blocks, cfg.encoder_dropout)
        self.decoder = Decoder(tuple(cfg.decoder_features), cfg.kernel_size, cfg.activation, cfg.implementation,
                               dtype)

    def encode(self, x, train: bool = False):
        """`train=True` turns on encoder dropout (it then needs a "dropout" rng)."""
        return self.encoder(x, train)

    def decode(self, z):
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x):
        return self.decode(self.encode(x))
