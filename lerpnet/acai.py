"""ACAI, an interpolation regulariser (Berthelot et al. 2018, "Understanding and improving
interpolation in autoencoders via an adversarial regularizer"), as pure pieces of a train step.

A critic sees decoded interpolants g(alpha z_1 + (1 - alpha) z_2), alpha in [0, 0.5], and learns to
predict alpha; the autoencoder adds lambda * critic(interpolant)^2 to its loss, i.e. it learns to
make in-between shapes the critic cannot tell from reconstructions (target 0). So the critic does
not win by spotting reconstructions alone, it also sees gamma x + (1 - gamma) g(f(x)), mixes of
real inputs and their reconstructions, with target 0. The paper's settings: lambda 0.5, gamma 0.2.
The critic has its own parameters and optimizer state (a flax TrainState inside the model's).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from lerpnet import models


def acai_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(
        dict(
            weight=0.0,  # lambda, the weight of the autoencoder's fooling term; 0 = ACAI off (paper: 0.5)
            gamma=0.2,  # the mix of real inputs into their reconstructions shown to the critic
            critic_features=(32, 64),  # the critic's strided convs (it is an encoder with a scalar head)
        )
    )
    cfg.update(overrides)
    return cfg


class Critic(nn.Module):
    """(B, 32, 32, 32) occupancy probabilities -> (B,) predicted mixing coefficient: an encoder whose
    latent-shaped output is averaged, as in the paper."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x):
        h = models.Encoder(tuple(self.features), latent_features=8, kernel_size=4, activation="leaky_relu",
                           norm="none", implementation="auto", dtype=jnp.float32, name="encoder")(x)
        return jnp.mean(h, axis=(1, 2, 3, 4))


def create_critic(cfg: ml_collections.ConfigDict, key: jax.Array,
                  tx: optax.GradientTransformation) -> train_state.TrainState:
    critic = Critic(tuple(cfg.critic_features))
    params = jax.jit(critic.init)(key, jnp.zeros((1, 32, 32, 32), jnp.float32))
    return train_state.TrainState.create(apply_fn=critic.apply, params=params, tx=tx)


def mix_with_partner(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """alpha_i x_i + (1 - alpha_i) x'_i for each item of a batch and its partner x' (the batch reversed)."""
    a = alpha.reshape((-1,) + (1,) * (x.ndim - 1))
    return a * x + (1.0 - a) * jnp.flip(x, axis=0)


def interpolants(z: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each latent of a batch mixed with its partner's (`mix_with_partner`), alpha ~ U[0, 0.5] per
    shape: (mixed latents, alpha (B,))."""
    alpha = 0.5 * jax.random.uniform(key, (z.shape[0],))
    return mix_with_partner(z, alpha), alpha


def autoencoder_term(critic_on_interpolants: jax.Array) -> jax.Array:
    """The autoencoder's side: the critic's alpha for its interpolants, pushed to 0 (squared)."""
    return jnp.mean(jnp.square(critic_on_interpolants))


def real_mix(inputs: jax.Array, reconstructions: jax.Array, gamma: float) -> jax.Array:
    """gamma x + (1 - gamma) g(f(x)): real shapes blended into their reconstructions."""
    return gamma * inputs.astype(jnp.float32) + (1.0 - gamma) * reconstructions


def critic_loss(critic_on_interpolants: jax.Array, alpha: jax.Array, critic_on_real_mix: jax.Array) -> jax.Array:
    """The critic's side: predict alpha on interpolants, 0 on real mixes (squared errors)."""
    return jnp.mean(jnp.square(critic_on_interpolants - alpha)) + jnp.mean(jnp.square(critic_on_real_mix))


def critic_step(critic: train_state.TrainState, interpolated: jax.Array, alpha: jax.Array, inputs: jax.Array,
                reconstructions: jax.Array, gamma: float) -> tuple[train_state.TrainState, jax.Array]:
    """One optimizer step of the critic on decoded interpolants (probabilities) with their alphas and
    on real mixes; the autoencoder's outputs come in as constants. Returns (critic, loss before)."""
    interpolated, reconstructions = jax.lax.stop_gradient((interpolated, reconstructions))
    mix = real_mix(inputs, reconstructions, gamma)

    def loss_fn(params):
        return critic_loss(critic.apply_fn(params, interpolated), alpha, critic.apply_fn(params, mix))

    loss, grads = jax.value_and_grad(loss_fn)(critic.params)
    return critic.apply_gradients(grads=grads), loss
