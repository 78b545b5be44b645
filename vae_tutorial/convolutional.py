"""The convolutional VAE for 28x28x1 images: an encoder, a decoder and the model.

Taught in notebook 07_convolutional_vae.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import layers

from vae_tutorial.models import GaussianEncoder, VariationalAutoencoder
from vae_tutorial.priors import Prior, get_prior

CONV_EVENT_SHAPE = (28, 28, 1)  # an image with its one channel, as convolutions take it


class ConvEncoder(GaussianEncoder):
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
        self.add_heads(latent_dim)


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


@keras.saving.register_keras_serializable(package="vae_tutorial")
class ConvVAE(VariationalAutoencoder):
    """A convolutional VAE for 28x28x1 images, with the same contract as :class:`VAE`.

    ``seed``, ``likelihood`` and ``prior`` (keywords) as for :class:`VAE`. The command line
    trains it with ``--conv``. Taught in notebook 07_convolutional_vae.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        seed: int | None = None,
        prior: str | dict | Prior = "normal",
        **kwargs: Any,
    ) -> None:
        super().__init__(latent_dim, seed=seed, **kwargs)
        self.event_shape = CONV_EVENT_SHAPE
        self.encoder = ConvEncoder(latent_dim)
        self.decoder = ConvDecoder(latent_dim, output_channels=self.likelihood.params_per_pixel)
        self.prior = get_prior(prior, latent_dim, self.encoder, self.event_shape)
