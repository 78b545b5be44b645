"""Encoder, decoder and VAE models: the original article's MLP and a convolutional pair.

Every encoder maps a batch to ``(mu, log_var)`` of the approximate posterior q(z | x);
every decoder maps latent codes to Bernoulli *logits* (not probabilities: the loss works
from logits, which stays finite), or, with another ``likelihood`` (notebook
08_likelihoods_for_grey_pixels), to that distribution's parameters. Taught in notebook
03_the_model.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

from vae_tutorial.likelihoods import get_likelihood
from vae_tutorial.losses import reparameterize
from vae_tutorial.validation import check_batch_shape, check_int

IMAGE_SHAPE = (28, 28, 1)


def _hidden_sizes(intermediate_dim: int | Sequence[int]) -> list[int]:
    sizes = [intermediate_dim] if isinstance(intermediate_dim, int) else list(intermediate_dim)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            f"intermediate_dim must be a positive int or a list of them, got {intermediate_dim!r}."
        )
    return sizes


def _latent_dim(latent_dim) -> int:
    return check_int(latent_dim, "latent_dim", 1, fix="e.g. latent_dim=2.")


class Encoder(keras.Model):
    """MLP encoder: x -> hidden ReLU layer(s) -> (mu, log_var).

    ``intermediate_dim`` is one width (the original article's 128) or a list, e.g.
    ``[512, 512]``. Taught in notebook 03_the_model.
    """

    def __init__(self, latent_dim, intermediate_dim=128, **kwargs):
        super().__init__(**kwargs)
        # A Sequential, not a list of layers: tf.train.Checkpoint sees only layer attributes.
        self.hidden = keras.Sequential(
            [layers.Dense(size, activation="relu") for size in _hidden_sizes(intermediate_dim)],
            name="hidden",
        )
        self.mu = layers.Dense(_latent_dim(latent_dim), name="mu")
        self.log_var = layers.Dense(latent_dim, name="log_var")

    def call(self, x):
        h = self.hidden(x)
        return self.mu(h), self.log_var(h)


class Decoder(keras.Model):
    """MLP decoder: z -> hidden ReLU layer(s) -> ``output_dim`` Bernoulli logits.

    Taught in notebook 03_the_model.
    """

    def __init__(self, latent_dim, intermediate_dim=128, output_dim=784, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.Sequential(
            [
                layers.Dense(size, activation="relu")
                for size in reversed(_hidden_sizes(intermediate_dim))
            ],
            name="hidden",
        )
        self.output_layer = layers.Dense(output_dim, name="logits")

    def call(self, z):
        return self.output_layer(self.hidden(z))


class ConvEncoder(keras.Model):
    """Convolutional encoder for 28x28x1 images: two stride-2 convolutions -> (mu, log_var)."""

    def __init__(self, latent_dim, filters=(32, 64), **kwargs):
        super().__init__(**kwargs)
        self.features = keras.Sequential(
            [layers.Conv2D(f, 3, strides=2, padding="same", activation="relu") for f in filters]
            + [layers.Flatten()],
            name="features",
        )
        self.mu = layers.Dense(_latent_dim(latent_dim), name="mu")
        self.log_var = layers.Dense(latent_dim, name="log_var")

    def call(self, x):
        h = self.features(x)
        return self.mu(h), self.log_var(h)


class ConvDecoder(keras.Model):
    """Convolutional decoder: z -> 7x7 feature map -> two stride-2 transposed convolutions
    -> 28x28x1 Bernoulli logits (28x28x``output_channels`` likelihood parameters)."""

    def __init__(self, latent_dim, filters=(64, 32), output_channels=1, **kwargs):
        super().__init__(**kwargs)
        self.upsample = keras.Sequential(
            [
                layers.Dense(7 * 7 * filters[0], activation="relu"),
                layers.Reshape((7, 7, filters[0])),
            ]
            + [
                layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")
                for f in filters
            ],
            name="upsample",
        )
        self.output_layer = layers.Conv2DTranspose(
            output_channels, 3, padding="same", name="logits"
        )

    def call(self, z):
        return self.output_layer(self.upsample(z))


class _VariationalAutoencoder(keras.Model):
    """What every VAE here shares: sampling, encode/decode helpers and the input check."""

    event_shape: tuple[int, ...]
    encoder: keras.Model
    decoder: keras.Model

    def __init__(self, latent_dim, seed=None, likelihood="bernoulli", **kwargs):
        super().__init__(**kwargs)
        self.likelihood = get_likelihood(likelihood)
        self.latent_dim = _latent_dim(latent_dim)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # A Keras seed generator is no TensorFlow trackable: name its state here, so that
        # tf.train.Checkpoint(model=...) saves and restores the sampling RNG with the weights.
        children = super()._trackable_children(save_type, **kwargs)
        children["sampling_state"] = self.seed_generator.state
        return children

    def as_batch(self, x):
        """``x`` as a tensor of the model's dtype, its shape checked (a clear error if wrong)."""
        x = tf.convert_to_tensor(x)
        check_batch_shape(x, self.event_shape, type(self).__name__)
        return tf.cast(x, self.compute_dtype)

    def __call__(self, x, *args, **kwargs):
        return super().__call__(self.as_batch(x), *args, **kwargs)

    def call(self, x):
        """Return ``(logits, mu, log_var)`` for a batch, with z drawn by reparameterization.

        ``logits`` is the decoder output: the likelihood's parameters for other likelihoods.
        """
        mu, log_var = self.encoder(x)
        z = reparameterize(mu, log_var, seed=self.seed_generator)
        return self.decoder(z), mu, log_var

    def encode(self, x):
        """The posterior's ``(mu, log_var)`` for a batch of images."""
        return self.encoder(self.as_batch(x))

    def decode(self, z):
        """Decoder output (Bernoulli logits by default) for codes ``z`` of shape
        ``(n, latent_dim)``."""
        return self.decoder(tf.convert_to_tensor(z, dtype=self.compute_dtype))

    def reconstruct(self, x):
        """The likelihood's mean (pixel probabilities for a Bernoulli) decoded from the
        posterior mean of each image."""
        mu, _ = self.encode(x)
        return self.likelihood.mean(self.decode(mu))

    def sample(self, n):
        """The likelihood's mean (pixel probabilities for a Bernoulli) of ``n`` images decoded
        from z ~ N(0, I)."""
        z = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        return self.likelihood.mean(self.decode(z))

    def log_likelihood(self, x, z):
        """log p(x | z) per example under the model's likelihood (Bernoulli by default)."""
        return self.likelihood.log_prob(x, self.decode(z))


@keras.saving.register_keras_serializable(package="vae_tutorial")
class VAE(_VariationalAutoencoder):
    """The original article's MLP VAE: ``VAE(latent_dim=2, intermediate_dim=128, input_dim=784)``.

    Calling it on a batch of shape ``(batch, input_dim)`` returns ``(logits, mu, log_var)``,
    so ``vae_loss(x, *vae(x))`` is the loss. Taught in notebook 03_the_model; ``likelihood``
    ("bernoulli", "gaussian", ...: :func:`vae_tutorial.get_likelihood`) in notebook
    08_likelihoods_for_grey_pixels.
    """

    def __init__(
        self,
        latent_dim=2,
        intermediate_dim=128,
        input_dim=784,
        seed=None,
        likelihood="bernoulli",
        **kwargs,
    ):
        super().__init__(latent_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.intermediate_dim = intermediate_dim
        self.input_dim = input_dim
        self.event_shape = (input_dim,)
        self.encoder = Encoder(latent_dim, intermediate_dim)
        outputs = input_dim * self.likelihood.params_per_pixel
        self.decoder = Decoder(latent_dim, intermediate_dim, outputs)

    def get_config(self):
        return {
            "latent_dim": self.latent_dim,
            "intermediate_dim": self.intermediate_dim,
            "input_dim": self.input_dim,
            "seed": self.seed,
            "likelihood": self.likelihood.get_config(),
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="vae_tutorial")
class ConvVAE(_VariationalAutoencoder):
    """A convolutional VAE for 28x28x1 images, with the same contract as :class:`VAE`.

    The command line trains it with ``--conv``; no notebook teaches it yet.
    """

    def __init__(self, latent_dim=2, seed=None, likelihood="bernoulli", **kwargs):
        super().__init__(latent_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.event_shape = IMAGE_SHAPE
        self.encoder = ConvEncoder(latent_dim)
        self.decoder = ConvDecoder(latent_dim, output_channels=self.likelihood.params_per_pixel)

    def get_config(self):
        return {
            "latent_dim": self.latent_dim,
            "seed": self.seed,
            "likelihood": self.likelihood.get_config(),
            "name": self.name,
        }
