"""Encoder, decoder and VAE models: the original article's MLP and a convolutional pair.

Every encoder maps a batch to ``(mu, log_var)`` of the approximate posterior q(z | x);
every decoder maps latent codes to Bernoulli *logits* (not probabilities: the loss works
from logits, which stays finite), or, with another ``likelihood`` (notebook
08_likelihoods_for_grey_pixels), to that distribution's parameters. Taught in notebook
03_the_model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import layers

from vae_tutorial.likelihoods import Likelihood, get_likelihood
from vae_tutorial.losses import reparameterize
from vae_tutorial.types_ import Array, Batch, TensorLike
from vae_tutorial.validation import check_batch_shape, check_int, check_labels

CONV_EVENT_SHAPE = (28, 28, 1)  # an image with its one channel, as convolutions take it


def _hidden_sizes(intermediate_dim: int | Sequence[int]) -> list[int]:
    sizes = [intermediate_dim] if isinstance(intermediate_dim, int) else list(intermediate_dim)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            f"intermediate_dim must be a positive int or a list of them, got {intermediate_dim!r}."
        )
    return sizes


def _latent_dim(latent_dim: int) -> int:
    return check_int(latent_dim, "latent_dim", 1, fix="e.g. latent_dim=2.")


class Encoder(keras.Model):
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
            [layers.Dense(size, activation="relu") for size in _hidden_sizes(intermediate_dim)],
            name="hidden",
        )
        self.mu = layers.Dense(_latent_dim(latent_dim), name="mu")
        self.log_var = layers.Dense(latent_dim, name="log_var")

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        h = self.hidden(x)
        return self.mu(h), self.log_var(h)


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
        self.hidden = keras.Sequential(
            [
                layers.Dense(size, activation="relu")
                for size in reversed(_hidden_sizes(intermediate_dim))
            ],
            name="hidden",
        )
        self.output_layer = layers.Dense(output_dim, name="logits")

    def call(self, z: tf.Tensor) -> tf.Tensor:
        return self.output_layer(self.hidden(z))


class ConvEncoder(keras.Model):
    """Convolutional encoder for 28x28x1 images: two stride-2 convolutions -> (mu, log_var).

    3x3 kernels, "same" padding: the side goes 28 -> 14 -> 7 (ceil(n / stride)); a conv layer
    has (k * k * c_in + 1) * c_out parameters. Taught in notebook 07_convolutional_vae.
    """

    def __init__(self, latent_dim: int, filters: Sequence[int] = (32, 64), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.features = keras.Sequential(
            [layers.Conv2D(f, 3, strides=2, padding="same", activation="relu") for f in filters]
            + [layers.Flatten()],
            name="features",
        )
        self.mu = layers.Dense(_latent_dim(latent_dim), name="mu")
        self.log_var = layers.Dense(latent_dim, name="log_var")

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        h = self.features(x)
        return self.mu(h), self.log_var(h)


class ConvDecoder(keras.Model):
    """Convolutional decoder: z -> 7x7 feature map -> two stride-2 transposed convolutions
    -> 28x28x1 Bernoulli logits (28x28x``output_channels`` likelihood parameters).

    A stride-s transposed convolution with "same" padding maps a side n to n * s: 7 -> 14 -> 28.
    Taught in notebook 07_convolutional_vae.
    """

    def __init__(
        self,
        latent_dim: int,
        filters: Sequence[int] = (64, 32),
        output_channels: int = 1,
        **kwargs: Any,
    ) -> None:
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

    def call(self, z: tf.Tensor) -> tf.Tensor:
        return self.output_layer(self.upsample(z))


class _VariationalAutoencoder(keras.Model):
    """What every VAE here shares: sampling, encode/decode helpers and the input check."""

    event_shape: tuple[int, ...]
    encoder: keras.Model
    decoder: keras.Model

    def __init__(
        self,
        latent_dim: int,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
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
        from z ~ N(0, I)."""
        z = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        return self.likelihood.mean(self.decode(z))

    def log_likelihood(self, x: TensorLike, z: TensorLike) -> tf.Tensor:
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
        latent_dim: int = 2,
        intermediate_dim: int | Sequence[int] = 128,
        input_dim: int = 784,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        super().__init__(latent_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.intermediate_dim = intermediate_dim
        self.input_dim = input_dim
        self.event_shape = (input_dim,)
        self.encoder = Encoder(latent_dim, intermediate_dim)
        outputs = input_dim * self.likelihood.params_per_pixel
        self.decoder = Decoder(latent_dim, intermediate_dim, outputs)

    def get_config(self) -> dict:
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

    The command line trains it with ``--conv``. Taught in notebook 07_convolutional_vae.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        super().__init__(latent_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.event_shape = CONV_EVENT_SHAPE
        self.encoder = ConvEncoder(latent_dim)
        self.decoder = ConvDecoder(latent_dim, output_channels=self.likelihood.params_per_pixel)

    def get_config(self) -> dict:
        return {
            "latent_dim": self.latent_dim,
            "seed": self.seed,
            "likelihood": self.likelihood.get_config(),
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="vae_tutorial")
class ConditionalVAE(VAE):
    """A conditional VAE (Sohn et al. 2015): encoder q(z | x, y) and decoder p(x | z, y).

    ``ConditionalVAE(latent_dim=2, intermediate_dim=128, input_dim=784, num_classes=10)``:
    the MLPs of :class:`VAE`, each fed the one-hot label y concatenated to its input. A batch
    is the pair ``(x, labels)`` (Keras' convention for a model with two inputs), with
    integer labels of shape ``(batch,)``; calling the model on it returns
    ``(logits, mu, log_var)`` as :class:`VAE` does, so ``vae_loss(x, *cvae((x, labels)))``
    is the negative conditional ELBO, a bound on -log p(x | y):

        log p(x | y) >= E_q(z|x,y)[log p(x | z, y)] - KL(q(z | x, y) || N(0, I)).

    ``encode``, ``decode``, ``reconstruct``, ``sample`` and ``log_likelihood`` take the
    labels as their last argument. Taught in notebook 10_conditional_vae.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        intermediate_dim: int | Sequence[int] = 128,
        input_dim: int = 784,
        num_classes: int = 10,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        input_dim = check_int(input_dim, "input_dim", 1, fix="e.g. 784 for MNIST.")
        super().__init__(latent_dim, intermediate_dim, input_dim, seed, likelihood, **kwargs)
        self.num_classes = check_int(num_classes, "num_classes", 2, fix="e.g. 10 for MNIST.")
        # Built now, so that code which builds a model with an image batch alone (fit,
        # restore_run) finds it built: a conditional model is never called without labels.
        self.encoder(tf.zeros([1, self.input_dim + self.num_classes]))
        self.decoder(tf.zeros([1, self.latent_dim + self.num_classes]))
        self.built = True

    # The methods below take the labels too, so their signatures differ from VAE's: hence
    # the `type: ignore[override]` that tells the type checker this is meant.
    def as_batch(  # type: ignore[override]
        self, batch: tuple[Array, Array]
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``(x, labels)`` as tensors, their shapes and the labels' range checked."""
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(
                "ConditionalVAE is called on a pair (x, labels), e.g. cvae((x, y)) with y the "
                f"integer class of each image; got {type(batch).__name__}."
            )
        x = super().as_batch(batch[0])
        return x, check_labels(batch[1], self.num_classes, x.shape[0])

    def _one_hot(self, labels, dtype):
        return tf.one_hot(labels, self.num_classes, dtype=dtype)

    def call(self, batch: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Return ``(logits, mu, log_var)`` for a batch ``(x, labels)``, z reparameterized."""
        x, labels = batch
        mu, log_var = self._encode(x, labels)
        z = reparameterize(mu, log_var, seed=self.seed_generator)
        return self._decode(z, labels), mu, log_var

    def _encode(self, x, labels):
        return self.encoder(tf.concat([x, self._one_hot(labels, x.dtype)], axis=-1))

    def _decode(self, z, labels):
        return self.decoder(tf.concat([z, self._one_hot(labels, z.dtype)], axis=-1))

    def encode(  # type: ignore[override]
        self, x: TensorLike, labels: TensorLike
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """The posterior q(z | x, y)'s ``(mu, log_var)`` for images ``x`` with ``labels``."""
        return self._encode(*self.as_batch((x, labels)))

    def decode(self, z: TensorLike, labels: TensorLike) -> tf.Tensor:  # type: ignore[override]
        """Decoder output of p(x | z, y) (Bernoulli logits by default) for codes ``z``
        (n, latent_dim) and ``labels``."""
        z = tf.convert_to_tensor(z, dtype=self.compute_dtype)
        return self._decode(z, check_labels(labels, self.num_classes, z.shape[0]))

    def reconstruct(  # type: ignore[override]
        self, x: TensorLike, labels: TensorLike
    ) -> tf.Tensor:
        """The likelihood's mean (pixel probabilities for a Bernoulli) decoded from the
        posterior mean, under the images' labels."""
        mu, _ = self.encode(x, labels)
        return self.likelihood.mean(self.decode(mu, labels))

    def sample(self, n: int, labels: TensorLike) -> tf.Tensor:  # type: ignore[override]
        """The likelihood's mean (pixel probabilities for a Bernoulli) of ``n`` images of
        class ``labels`` (one int, or n of them), decoded from z ~ N(0, I)."""
        n = check_int(n, "n", 1, fix="e.g. sample(10, labels=3).")
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 0:  # one class for all n images
            labels = tf.fill([n], labels)
        z = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        return self.likelihood.mean(self.decode(z, labels))

    def log_likelihood(  # type: ignore[override]
        self, x: TensorLike, z: TensorLike, labels: TensorLike
    ) -> tf.Tensor:
        """log p(x | z, y) per example under the model's likelihood (Bernoulli by default)."""
        return self.likelihood.log_prob(x, self.decode(z, labels))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}
