"""ACAI: interpolants, the critic's targets, the signs of both losses, and the critic's own step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lerpnet import acai


def test_interpolants_mix_each_latent_with_its_partner_at_alpha_up_to_one_half():
    z = jax.random.normal(jax.random.key(0), (64, 2, 2, 2, 8))
    mixed, alpha = acai.interpolants(z, jax.random.key(1))
    assert mixed.shape == z.shape and alpha.shape == (64,)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 0.5
    assert float(alpha.max()) > 0.4 and float(alpha.min()) < 0.1  # it covers the range
    a = alpha[:, None, None, None, None]
    np.testing.assert_allclose(mixed, a * z + (1 - a) * z[::-1], rtol=1e-5, atol=1e-6)


def test_critic_targets_alpha_on_interpolants_and_zero_on_real_mixes():
    alpha = jnp.array([0.1, 0.3, 0.5])
    assert float(acai.critic_loss(alpha, alpha, jnp.zeros(3))) == 0.0  # a perfect critic
    assert float(acai.critic_loss(jnp.zeros(3), alpha, jnp.zeros(3))) == pytest.approx(
        float(jnp.mean(alpha**2)))  # fooled on interpolants
    assert float(acai.critic_loss(alpha, alpha, jnp.full(3, 0.2))) == pytest.approx(0.04)  # wrong on reals
    # The autoencoder wins when the critic says 0 ("not an interpolant"): its term is 0 there, > 0 elsewhere.
    assert float(acai.autoencoder_term(jnp.zeros(3))) == 0.0
    assert float(acai.autoencoder_term(alpha)) == pytest.approx(float(jnp.mean(alpha**2)))


def test_real_mix_blends_gamma_of_the_input_into_the_reconstruction():
    x = jnp.ones((1, 32, 32, 32), bool)
    recon = jnp.full((1, 32, 32, 32), 0.5)
    np.testing.assert_allclose(acai.real_mix(x, recon, 0.2), 0.2 + 0.8 * 0.5)


def test_critic_step_learns_alpha_and_leaves_its_inputs_constant():
    cfg = acai.acai_config(weight=0.5, critic_features=(4, 4))
    critic = acai.create_critic(cfg, jax.random.key(0), optax.adam(3e-3))
    shapes = (jax.random.uniform(jax.random.key(1), (8, 32, 32, 32)) < 0.1)
    alpha = jnp.linspace(0.0, 0.5, 8)
    interpolated = jnp.clip(shapes + alpha[:, None, None, None], 0, 1)  # alpha is visible in the input
    recon = shapes.astype(jnp.float32) * 0.9
    step = jax.jit(lambda c: acai.critic_step(c, interpolated, alpha, shapes, recon, cfg.gamma))
    first = None
    for _ in range(30):
        critic, loss = step(critic)
        first = float(loss) if first is None else first
    assert np.isfinite(float(loss)) and float(loss) < 0.5 * first
    assert int(critic.step) == 30

    # Gradients reach the critic's parameters, never its (autoencoder-made) inputs.
    grad = jax.grad(lambda x: acai.critic_step(critic, x, alpha, shapes, recon, cfg.gamma)[1])(interpolated)
    assert float(jnp.max(jnp.abs(grad))) == 0.0
