"""The autoencoder: shapes, parameter layout, and the fast formulations equal to the plain Flax layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lerpnet import layers, models

# (input length, in channels, out channels, kernel, stride): the model's layers, then odd geometries.
TRANSPOSED = [(16, 32, 1, 4, 2), (8, 16, 32, 4, 2), (5, 3, 2, 3, 2), (4, 2, 3, 5, 3)]
STRIDED = [(32, 1, 32, 4, 2, "SAME"), (16, 32, 16, 4, 2, "SAME"), (8, 16, 8, 4, 4, "VALID"),
           (9, 2, 3, 3, 2, "SAME"), (10, 2, 3, 5, 3, "VALID")]


@pytest.fixture(autouse=True)
def _float32_products():
    """The formulations are compared in float32: a GPU's default for float32 products is TF32, whose
    rounding (about 1e-3) is not what these tests are about."""
    with jax.default_matmul_precision("highest"):
        yield


def _random(shape, seed):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _close(a, b, tol=1e-5):
    scale = max(1.0, float(jnp.max(jnp.abs(b))))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("fast", [layers.subpixel_conv_transpose, layers.matmul_conv_transpose])
@pytest.mark.parametrize("n,cin,cout,k,s", TRANSPOSED)
def test_conv_transpose_equals_flax(fast, n, cin, cout, k, s):
    x = _random((2, n, n, n, cin), 0)
    plain = nn.ConvTranspose(cout, (k, k, k), (s, s, s), padding="SAME")
    params = plain.init(jax.random.key(1), x)
    kernel = _random(params["params"]["kernel"].shape, 2)  # not the initialiser's: every tap matters
    params = {"params": {"kernel": kernel, "bias": params["params"]["bias"]}}
    want = plain.apply(params, x)
    assert want.shape == (2, s * n, s * n, s * n, cout)
    _close(fast(x, kernel, s) + params["params"]["bias"], want)


@pytest.mark.parametrize("fast", [layers.subpixel_conv, layers.matmul_conv])
@pytest.mark.parametrize("n,cin,cout,k,s,padding", STRIDED)
def test_strided_conv_equals_flax(fast, n, cin, cout, k, s, padding):
    x = _random((2, n, n, n, cin), 3)
    plain = nn.Conv(cout, (k, k, k), (s, s, s), padding=padding)
    kernel = _random(plain.init(jax.random.key(1), x)["params"]["kernel"].shape, 4)
    want = plain.apply({"params": {"kernel": kernel, "bias": jnp.zeros(cout)}}, x)
    _close(fast(x, kernel, s, padding), want)


def _pair(**overrides):
    """The model in its fast and plain formulations, and one set of random (non-initial) parameters."""
    fast = models.Autoencoder(models.model_config(**overrides))
    plain = models.Autoencoder(models.model_config(**{**overrides, "implementation": "flax"}))
    params = fast.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [0.2 * _random(p.shape, i) for i, p in enumerate(leaves)])
    return fast, plain, params


@pytest.mark.parametrize("overrides", [{}, {"norm": "group", "activation": "leaky_relu"}, {"norm": "layer"}])
def test_autoencoder_equals_plain_flax(overrides):
    fast, plain, params = _pair(**overrides)
    x = jax.random.uniform(jax.random.key(5), (2, 32, 32, 32))
    z = fast.apply(params, x, method=models.Autoencoder.encode)
    _close(z, plain.apply(params, x, method=models.Autoencoder.encode))
    _close(fast.apply(params, z, method=models.Autoencoder.decode),
           plain.apply(params, z, method=models.Autoencoder.decode), tol=1e-4)


def test_gradients_equal_plain_flax():
    fast, plain, params = _pair(encoder_features=(4, 4), decoder_features=(4, 4))
    x = (jax.random.uniform(jax.random.key(6), (2, 32, 32, 32)) < 0.1).astype(jnp.float32)

    def grads(model):
        return jax.grad(lambda p: jnp.mean((jax.nn.sigmoid(model.apply(p, x)) - x) ** 2))(params)

    for g_fast, g_plain in zip(jax.tree.leaves(grads(fast)), jax.tree.leaves(grads(plain))):
        _close(g_fast, g_plain, tol=1e-4)


def test_shapes_and_parameter_layout():
    model = models.Autoencoder(models.model_config())
    x = jnp.zeros((3, 32, 32, 32), bool)
    params = model.init(jax.random.key(0), x)
    z = model.apply(params, x, method=models.Autoencoder.encode)
    logits = model.apply(params, z, method=models.Autoencoder.decode)
    assert z.shape == (3, 2, 2, 2, 8)
    assert logits.shape == (3, 32, 32, 32) and logits.dtype == jnp.float32
    _close(model.apply(params, x), logits)
    shapes = jax.tree.map(jnp.shape, params["params"])
    assert shapes["decoder"] == {
        "fc": {"kernel": (64, 8 * 8 * 8 * 16), "bias": (8 * 8 * 8 * 16,)},
        "up1": {"kernel": (4, 4, 4, 16, 32), "bias": (32,)},
        "up2": {"kernel": (4, 4, 4, 32, 1), "bias": (1,)},
    }
    assert shapes["encoder"] == {
        "conv1": {"kernel": (4, 4, 4, 1, 32), "bias": (32,)},
        "conv2": {"kernel": (4, 4, 4, 32, 16), "bias": (16,)},
        "conv3": {"kernel": (4, 4, 4, 16, 8), "bias": (8,)},
    }


def test_normalisation_is_in_the_encoder_only():
    model = models.Autoencoder(models.model_config(norm="group"))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))["params"]
    assert {"norm1", "norm2"} <= set(params["encoder"])
    assert set(params["decoder"]) == {"fc", "up1", "up2"}


def test_decode_is_per_shape():
    _, _, params = _pair()
    model = models.Autoencoder(models.model_config())
    z = _random((4, 2, 2, 2, 8), 7)
    batch = model.apply(params, z, method=models.Autoencoder.decode)
    one = model.apply(params, z[2:3], method=models.Autoencoder.decode)
    _close(batch[2:3], one)


def test_bfloat16_compute_tracks_float32():
    _, _, params = _pair()
    x = jax.random.uniform(jax.random.key(8), (2, 32, 32, 32)) < 0.1
    f32 = models.Autoencoder(models.model_config()).apply(params, x)
    bf16 = models.Autoencoder(models.model_config(dtype="bfloat16")).apply(params, x)
    assert bf16.dtype == jnp.float32
    assert float(jnp.mean(jnp.abs(bf16 - f32))) < 0.05 * float(jnp.mean(jnp.abs(f32)))


@pytest.mark.parametrize("field,value", [("activation", "tanhh"), ("norm", "batch"), ("implementation", "cuda")])
def test_bad_config_names_the_choices(field, value):
    model = models.Autoencoder(models.model_config(**{field: value}))
    with pytest.raises(ValueError, match=field):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 32)))


def test_residual_blocks_start_as_the_identity_and_keep_the_latent_shape():
    plain = models.Autoencoder(models.model_config(encoder_features=(4, 8), decoder_features=(4, 4)))
    deep = models.Autoencoder(models.model_config(encoder_features=(4, 8), decoder_features=(4, 4), encoder_blocks=2))
    x = jax.random.uniform(jax.random.key(9), (2, 32, 32, 32)) < 0.1
    params = deep.init(jax.random.key(0), x)
    enc = params["params"]["encoder"]
    assert jax.tree.map(jnp.shape, enc["block1"]) == {"conv_a": {"kernel": (3, 3, 3, 8, 4), "bias": (4,)},
                                                      "conv_b": {"kernel": (3, 3, 3, 4, 8), "bias": (8,)}}
    assert set(params["params"]["decoder"]) == {"fc", "up1", "up2"}  # the decoder the fused kernel runs
    without = {"params": {"encoder": {k: v for k, v in enc.items() if not k.startswith("block")},
                          "decoder": params["params"]["decoder"]}}
    z = deep.apply(params, x, method=models.Autoencoder.encode)
    assert z.shape == (2, 2, 2, 2, 8)
    _close(z, plain.apply(without, x, method=models.Autoencoder.encode))
    # Once trained away from zero, the blocks change the latent.
    enc["block1"]["conv_b"]["kernel"] = _random(enc["block1"]["conv_b"]["kernel"].shape, 10)
    assert not np.allclose(deep.apply(params, x, method=models.Autoencoder.encode), z)


def test_encoder_dropout_acts_in_training_only():
    model = models.Autoencoder(models.model_config(encoder_features=(4, 4), decoder_features=(4, 4),
                                                   encoder_dropout=0.5))
    x = jax.random.uniform(jax.random.key(11), (2, 32, 32, 32)) < 0.2
    params = model.init(jax.random.key(0), x)
    encode = lambda train, key: model.apply(params, x, train, method=models.Autoencoder.encode,  # noqa: E731
                                            rngs={"dropout": jax.random.key(key)})
    _close(encode(False, 1), encode(False, 2))
    _close(encode(False, 1), model.apply(params, x, method=models.Autoencoder.encode))
    assert not np.allclose(encode(True, 1), encode(False, 1))
    assert not np.allclose(encode(True, 1), encode(True, 2))
    assert bool(jnp.all(jnp.isfinite(encode(True, 1))))
