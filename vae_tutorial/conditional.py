"""The conditional VAE (Sohn et al. 2015): q(z | x, y) and p(x | z, y), y an image's class.

Taught in notebook 10_conditional_vae.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from vae_tutorial.likelihoods import Likelihood
from vae_tutorial.losses import reparameterize
from vae_tutorial.models import VAE
from vae_tutorial.priors import has_standard_normal_prior
from vae_tutorial.types_ import Array, TensorLike
from vae_tutorial.validation import (
    check_int,
    check_label_array,
    check_labels,
    check_uint8_images,
)


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
        if not has_standard_normal_prior(self):
            raise ValueError(
                "ConditionalVAE's prior is N(0, I); a learned prior (notebook 13) is for VAE "
                "and ConvVAE: leave prior out, or train a VAE(prior=...)."
            )
        # Built now, so that code which builds a model with an image batch alone (fit,
        # restore_run) finds it built: a conditional model is never called without labels.
        self.encoder(tf.zeros([1, self.input_dim + self.num_classes]))
        self.decoder(tf.zeros([1, self.latent_dim + self.num_classes]))
        self.built = True

    def split_data(  # type: ignore[override]
        self, data: tuple[Array, Array], name: str
    ) -> tuple[Array, Array]:
        """fit's ``data`` for the conditional model: the pair ``(images, labels)``, uint8
        images (N, 28, 28) and one class index per image, checked."""
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(
                f"ConditionalVAE is conditioned on the class: pass {name} as the pair (images, "
                "labels), e.g. (data.train_images, data.train_labels) from load_dataset."
            )
        images = check_uint8_images(data[0], f"{name}'s images")
        return images, check_label_array(data[1], self.num_classes, f"{name}'s labels", len(images))

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
