"""Encoder, decoder and VAE: the original article's MLP, and what every VAE here shares.

Every encoder maps a batch to ``(mu, log_var)`` of the approximate posterior q(z | x);
every decoder maps latent codes to Bernoulli *logits* (not probabilities: the loss works
from logits, which stays finite), or, with another ``likelihood`` (notebook
08_likelihoods_for_grey_pixels), to that distribution's parameters. Taught in notebook
03_the_model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import layers

from vae_tutorial.likelihoods import Likelihood, get_likelihood
from vae_tutorial.losses import reparameterize
from vae_tutorial.priors import Prior, get_prior
from vae_tutorial.types_ import Array, Batch, TensorLike
from vae_tutorial.validation import (
    check_batch_shape,
    check_hidden_sizes,
    check_latent_dim,
    check_uint8_images,
)


class GaussianEncoder(keras.Model):
    """What every encoder here ends with: two linear heads on ``features(x)``, the ``(mu,
    log_var)`` of q(z | x). A subclass makes ``features``, then calls :meth:`add_heads`.
    Taught in notebooks 03_the_model and 07_convolutional_vae."""

    features: Callable[[tf.Tensor], tf.Tensor]

    def add_heads(self, latent_dim: int) -> None:
        self.mu = layers.Dense(check_latent_dim(latent_dim), name="mu")
        self.log_var = layers.Dense(latent_dim, name="log_var")

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        h = self.features(x)
        return self.mu(h), self.log_var(h)


class Encoder(GaussianEncoder):
    """MLP encoder: x -> hidden ReLU layer(s) -> (mu, log_var).

    ``intermediate_dim`` is one width (the original article's 128) or a list, e.g.
    ``[512, 512]``. Taught in notebook 03_the_model.
    """

    def __init__(
        self, latent_dim: int, intermediate_dim: int | Sequence[int] = 128, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        # A Sequential, not a list of layers: tf.train.Checkpoint sees only layer attributes.
        self.hidden = keras.Sequential(
            [
                layers.Dense(size, activation="relu")
                for size in check_hidden_sizes(intermediate_dim)
            ],
            name="hidden",
        )
        self.add_heads(latent_dim)

    def features(self, x: tf.Tensor) -> tf.Tensor:
        return self.hidden(x)


class Decoder(keras.Model):
    """MLP decoder: z -> hidden ReLU layer(s) -> ``output_dim`` Bernoulli logits.

    Taught in notebook 03_the_model.
    """

    def __init__(
        self,
        latent_dim: int,
        intermediate_dim: int | Sequence[int] = 128,
        output_dim: int = 784,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        widths = reversed(check_hidden_sizes(intermediate_dim))  # the encoder's, mirrored
        self.hidden = keras.Sequential(
            [layers.Dense(width, activation="relu") for width in widths], name="hidden"
        )
        self.output_layer = layers.Dense(output_dim, name="logits")

    def call(self, z: tf.Tensor) -> tf.Tensor:
        return self.output_layer(self.hidden(z))


class VariationalAutoencoder(keras.Model):
    """What every VAE here shares: sampling, encode/decode helpers and the input check.

    A subclass makes ``encoder``, ``decoder``, ``event_shape`` (the shape of one image) and
    ``prior`` (``priors.get_prior``). Taught in notebook 03_the_model."""

    event_shape: tuple[int, ...]
    encoder: keras.Model
    decoder: keras.Model
    prior: keras.layers.Layer

    def __init__(
        self,
        latent_dim: int,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.likelihood = get_likelihood(likelihood)
        self.latent_dim = check_latent_dim(latent_dim)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # A Keras seed generator is no TensorFlow trackable: name its state here, so that
        # tf.train.Checkpoint(model=...) saves and restores the sampling RNG with the weights.
        children = super()._trackable_children(save_type, **kwargs)
        children["sampling_state"] = self.seed_generator.state
        return children

    def split_data(self, data: Array | tuple[Array, Array], name: str) -> tuple[Array, None]:
        """fit's ``data`` for this model: uint8 images (N, 28, 28), checked, and no labels
        (a ``ConditionalVAE`` takes the pair ``(images, labels)``). Taught in notebook
        05_training_on_mnist."""
        if isinstance(data, (tuple, list)):
            raise ValueError(
                f"{name} is a pair (images, labels), but {type(self).__name__} does not use "
                "labels; pass the images alone, or train a vae_tutorial.ConditionalVAE to "
                "condition on them."
            )
        return check_uint8_images(data, name), None

    def as_batch(self, x: TensorLike) -> tf.Tensor:
        """``x`` as a tensor of the model's dtype, its shape checked (a clear error if wrong)."""
        x = tf.convert_to_tensor(x)
        check_batch_shape(x, self.event_shape, type(self).__name__)
        return tf.cast(x, self.compute_dtype)

    def __call__(
        self, x: Batch, *args: Any, **kwargs: Any
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return super().__call__(self.as_batch(x), *args, **kwargs)

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Return ``(logits, mu, log_var)`` for a batch, with z drawn by reparameterization.

        ``logits`` is the decoder output: the likelihood's parameters for other likelihoods.
        """
        mu, log_var = self.encoder(x)
        z = reparameterize(mu, log_var, seed=self.seed_generator)
        return self.decoder(z), mu, log_var

    def encode(self, x: TensorLike) -> tuple[tf.Tensor, tf.Tensor]:
        """The posterior's ``(mu, log_var)`` for a batch of images."""
        return self.encoder(self.as_batch(x))

    def decode(self, z: TensorLike) -> tf.Tensor:
        """Decoder output (Bernoulli logits by default) for codes ``z`` of shape
        ``(n, latent_dim)``."""
        return self.decoder(tf.convert_to_tensor(z, dtype=self.compute_dtype))

    def reconstruct(self, x: TensorLike) -> tf.Tensor:
        """The likelihood's mean (pixel probabilities for a Bernoulli) decoded from the
        posterior mean of each image."""
        mu, _ = self.encode(x)
        return self.likelihood.mean(self.decode(mu))

    def sample(self, n: int) -> tf.Tensor:
        """The likelihood's mean (pixel probabilities for a Bernoulli) of ``n`` images decoded
        from z ~ p(z), N(0, I) unless the model has another prior."""
        z = self.prior.sample(n, seed=self.seed_generator)
        return self.likelihood.mean(self.decode(z))

    def log_likelihood(self, x: TensorLike, z: TensorLike) -> tf.Tensor:
        """log p(x | z) per example under the model's likelihood (Bernoulli by default)."""
        return self.likelihood.log_prob(x, self.decode(z))

    def get_config(self) -> dict:
        """What ``type(model)(**config)`` rebuilds the model from (Keras saving)."""
        config = {"latent_dim": self.latent_dim, "seed": self.seed, "name": self.name,
                  "likelihood": self.likelihood.get_config()}  # fmt: skip
        if hasattr(self, "prior"):  # a hierarchical model's prior is its top layer, no option
            config["prior"] = self.prior.get_config()
        return config


@keras.saving.register_keras_serializable(package="vae_tutorial")
class VAE(VariationalAutoencoder):
    """The original article's MLP VAE: ``VAE(latent_dim=2, intermediate_dim=128, input_dim=784)``.

    Calling it on a batch of shape ``(batch, input_dim)`` returns ``(logits, mu, log_var)``,
    so ``vae_loss(x, *vae(x))`` is the loss. Taught in notebook 03_the_model; ``likelihood``
    ("bernoulli", "gaussian", ...: :func:`vae_tutorial.get_likelihood`) in notebook
    08_likelihoods_for_grey_pixels; ``prior`` ("normal", "mog", "vamp") in notebook
    13_priors_and_hierarchy.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        intermediate_dim: int | Sequence[int] = 128,
        input_dim: int = 784,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        prior: str | dict | Prior = "normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(latent_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.intermediate_dim = intermediate_dim
        self.input_dim = input_dim
        self.event_shape = (input_dim,)
        self.encoder = Encoder(latent_dim, intermediate_dim)
        outputs = input_dim * self.likelihood.params_per_pixel
        self.decoder = Decoder(latent_dim, intermediate_dim, outputs)
        self.prior = get_prior(prior, latent_dim, self.encoder, self.event_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "intermediate_dim": self.intermediate_dim,
            "input_dim": self.input_dim,
        }
