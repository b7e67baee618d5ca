"""The conv3d voxel autoencoder: 32^3 occupancy -> a 2x2x2x8 latent (64 numbers) -> 32^3 logits.

Channels-last (NDHWC). The strided layers hold exactly the parameters of `flax.linen.Conv` /
`flax.linen.ConvTranspose(padding='SAME')` (DHWIO kernels, `bias`) but run them in formulations
that XLA executes far faster than its lowering of strided / input-dilated convolutions (the plain
Flax transposed convolution 16^3x32 -> 32^3x1 takes ~0.9 s per shape on a 2-core CPU):

* "subpixel": a stride-s convolution is a space-to-depth of its padded input and a stride-1
  convolution with ceil(k/s) taps per axis; a stride-s transposed convolution is a stride-1
  convolution to s^3 x the channels (one group per output parity) and a depth-to-space.
* "matmul" (used by "auto" where a layer has a single input or output channel, where it measured
  faster on CPU and on an H100: float32 decoding 315k vs 274k shapes/s, training 41k vs 35k,
  results/perf/README.md): one matmul over the taps' shifted views (convolution), or one matmul
  giving every input voxel's k^3 contributions, shifted and added per axis into the output parities
  (transposed).
* "flax": the plain Flax layers on the same parameters, the reference the tests hold the others to.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

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
_DIMS = ("NDHWC", "DHWIO", "NDHWC")


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


def _same_padding(n: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading padding of `lax.conv_general_dilated` along one axis."""
    if padding == "SAME":
        out = -(-n // stride)
        return out, max((out - 1) * stride + k - n, 0) // 2
    return (n - k) // stride + 1, 0


def _space_to_depth(x: jax.Array, kernel_size: int, stride: int, padding: str) -> tuple[jax.Array, int, int]:
    """Pad and regroup x so that the strided convolution becomes a stride-1 VALID one with `taps` taps.

    y[m] = sum_k W[k] xpad[s*m + k] and k = s*q + r: tap q of the blocks' channel group r.
    Returns the blocks (B, L, L, L, s^3*C) with channels (r1, r2, r3, c), the output length, taps.
    """
    b, n, cin = x.shape[0], x.shape[1], x.shape[-1]
    out, lo = _same_padding(n, kernel_size, stride, padding)
    taps = -(-kernel_size // stride)
    length = stride * (out + taps - 1)
    x = x[:, : length - lo, : length - lo, : length - lo]
    x = jnp.pad(x, [(0, 0)] + [(lo, length - lo - x.shape[1])] * 3 + [(0, 0)])
    blocks = length // stride
    x = x.reshape(b, blocks, stride, blocks, stride, blocks, stride, cin)
    return x.transpose(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, blocks, blocks, blocks, stride**3 * cin), out, taps


def _blocked_kernel(kernel: jax.Array, stride: int) -> jax.Array:
    """(k,k,k,I,O) -> (q, q, q, s^3*I, O) with w[q1,q2,q3,(r1,r2,r3,i),o] = W[s*q1+r1, ...] (0 past k)."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    taps = -(-k // stride)
    w = jnp.pad(kernel, [(0, taps * stride - k)] * 3 + [(0, 0), (0, 0)])
    w = w.reshape(taps, stride, taps, stride, taps, stride, cin, cout).transpose(0, 2, 4, 1, 3, 5, 6, 7)
    return w.reshape(taps, taps, taps, stride**3 * cin, cout)


def subpixel_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (s,)*3, padding)` (NDHWC, DHWIO): space-to-depth + stride-1 conv."""
    blocks, _, _ = _space_to_depth(x, kernel.shape[0], stride, padding)
    return lax.conv_general_dilated(blocks, _blocked_kernel(kernel, stride), (1, 1, 1), "VALID", dimension_numbers=_DIMS)


def matmul_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    """The same convolution as one matmul over patches (the taps' shifted views of the blocks, side by side)."""
    blocks, out, taps = _space_to_depth(x, kernel.shape[0], stride, padding)
    patches = jnp.concatenate([blocks[:, a:a + out, b:b + out, c:c + out]
                               for a, b, c in itertools.product(range(taps), repeat=3)], axis=-1)
    w = _blocked_kernel(kernel, stride).reshape(-1, kernel.shape[-1])
    return jnp.einsum("bxyzi,io->bxyzo", patches, w)


def _transposed_taps(kernel_size: int, stride: int) -> list[tuple[int, int, int]]:
    """(tap k, output parity r, input offset d) per axis of `lax.conv_transpose(..., 'SAME')`.

    lax.conv_transpose correlates W with the input dilated by s and padded by `before`, so
    y[s*m + r] = sum_k W[k] x[m + d] with d = (r + k - before) / s wherever that is an integer.
    """
    before = kernel_size - 1 if stride > kernel_size - 1 else -(-(kernel_size + stride - 2) // 2)
    return [(k, r, (r + k - before) // stride) for r in range(stride) for k in range(kernel_size)
            if (r + k - before) % stride == 0]


def _depth_to_space(y: jax.Array, stride: int) -> jax.Array:
    """(B, n, n, n, s, s, s, C) with parities after the position -> (B, s*n, s*n, s*n, C)."""
    b, n, c = y.shape[0], y.shape[1], y.shape[-1]
    return y.transpose(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, n * stride, n * stride, n * stride, c)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s,)*3, 'SAME')` (NDHWC, DHWIO): a stride-1 conv to s^3 x channels
    (one group per output parity), then depth-to-space."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    b, n = x.shape[0], x.shape[1]
    pairs = _transposed_taps(k, stride)
    lo, hi = -min(d for _, _, d in pairs), max(d for _, _, d in pairs)
    select = np.zeros((k, lo + hi + 1, stride), np.float32)  # select[k, j, r]: tap k feeds (tap j, parity r)
    for kk, r, d in pairs:
        select[kk, d + lo, r] = 1.0
    sel = jnp.asarray(select, kernel.dtype)
    w = jnp.einsum("adgio,abc,deh,gjk->bejichko", kernel, sel, sel, sel).reshape(
        lo + hi + 1, lo + hi + 1, lo + hi + 1, cin, stride**3 * cout)
    y = lax.conv_general_dilated(x, w, (1, 1, 1), [(lo, hi)] * 3, dimension_numbers=_DIMS)
    return _depth_to_space(y.reshape(b, n, n, n, stride, stride, stride, cout), stride)


def _shift(a: jax.Array, d: int, axis: int) -> jax.Array:
    """a[m + d] along `axis`, zero where m + d falls outside."""
    if d == 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (max(-d, 0), max(d, 0))
    return lax.slice_in_dim(jnp.pad(a, pad), max(d, 0), max(d, 0) + a.shape[axis], axis=axis)


def matmul_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """The same transposed convolution as one matmul (every input voxel's k^3 x O contributions), then
    per axis a shift-and-add of the taps into the output parities, then depth-to-space."""
    k, cin, cout = kernel.shape[0], kernel.shape[3], kernel.shape[4]
    b, n = x.shape[0], x.shape[1]
    y = jnp.einsum("bxyzi,ijklo->bxyzjklo", x, kernel.transpose(3, 0, 1, 2, 4))  # (B, n, n, n, k, k, k, O)
    pairs = _transposed_taps(k, stride)
    for axis in range(3):  # taps of spatial axis 1 + axis sit at 4 + axis; replace them by parities
        parity = [sum(_shift(lax.index_in_dim(y, kk, 4 + axis, keepdims=False), d, 1 + axis)
                      for kk, rr, d in pairs if rr == r) for r in range(stride)]
        y = jnp.stack(parity, axis=4 + axis)
    return _depth_to_space(y, stride)


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
