"""The VQ-VAE: a grid of discrete codes in place of a Gaussian z, its training step and bound.

The encoder maps a 28x28 image to a 7x7 grid of vectors z_e; the quantizer
(``quantizer.VectorQuantizer``) replaces each by its nearest codebook vector, whose index is
that position's code, with the straight-through gradient; the decoder reads the quantized grid
z_q (van den Oord et al. 2017, "Neural discrete representation learning").

As a latent variable model the codes have a uniform prior and a one-hot posterior, so the
KL is (grid positions) * log K exactly and the ELBO is log p(x | z_q) - 49 log K; with a
learned prior p(codes) (``pixelcnn.PixelCNNPrior``) the bound is log p(x | z_q) + log p(codes).
Taught in notebook 14_vq_vae.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from vae_tutorial.compiled import compiled_for
from vae_tutorial.convolutional import CONV_EVENT_SHAPE
from vae_tutorial.likelihoods import Likelihood
from vae_tutorial.models import VariationalAutoencoder
from vae_tutorial.quantizer import VectorQuantizer, check_codes
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import Batch, Seed, TensorLike
from vae_tutorial.validation import check_int

GRID = (7, 7)  # two stride-2 convolutions: 28 -> 14 -> 7


class CodePrior(Protocol):
    """A distribution over code grids, e.g. ``pixelcnn.PixelCNNPrior``."""

    def log_prob(self, codes: TensorLike) -> tf.Tensor: ...

    def sample(self, n: int, seed: Seed = None) -> tf.Tensor: ...


def grid_encoder(code_dim: int, filters: tuple[int, ...] = (32, 64)) -> keras.Sequential:
    """28x28x1 -> 7x7x``code_dim``: :class:`ConvEncoder`'s two stride-2 convolutions, then a
    1x1 convolution to the code vectors instead of its dense heads. Taught in notebook
    14_vq_vae."""
    strided = [layers.Conv2D(f, 3, strides=2, padding="same", activation="relu") for f in filters]
    return keras.Sequential([*strided, layers.Conv2D(code_dim, 1)], name="encoder")


def grid_decoder(output_channels: int, filters: tuple[int, ...] = (64, 32)) -> keras.Sequential:
    """7x7xD -> 28x28x``output_channels``: :class:`ConvDecoder`'s transposed convolutions,
    reading a grid instead of a dense layer's output. Taught in notebook 14_vq_vae."""
    upsample = [
        layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu") for f in filters
    ]
    return keras.Sequential(
        [layers.Conv2D(filters[0], 3, padding="same", activation="relu"), *upsample,
         layers.Conv2DTranspose(output_channels, 3, padding="same", name="logits")],
        name="decoder",
    )  # fmt: skip


@keras.saving.register_keras_serializable(package="vae_tutorial")
class VQVAE(VariationalAutoencoder):
    """A VQ-VAE for 28x28x1 images: a 7x7 grid of codes out of ``num_codes``.

    Calling it returns ``(logits, z_e, codes)``: the decoder's output from the quantized grid,
    the encoder's grid and its codes. ``ema``, ``commitment``, ``decay`` and ``restart_after``
    are the :class:`VectorQuantizer`'s; ``likelihood`` and ``seed`` (of code restarts and of
    ``sample``) as for :class:`VAE`. fit trains it with :func:`vq_step_terms`; the command line
    with ``--model vqvae``. Taught in notebook 14_vq_vae.
    """

    def __init__(
        self,
        num_codes: int = 64,
        code_dim: int = 16,
        seed: int | None = None,
        ema: bool = False,
        *,
        commitment: float = 0.25,
        decay: float = 0.99,
        restart_after: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        super().__init__(code_dim, seed=seed, likelihood=likelihood, **kwargs)
        self.event_shape = CONV_EVENT_SHAPE
        self.encoder = grid_encoder(code_dim)
        self.quantizer = VectorQuantizer(
            num_codes, code_dim, commitment=commitment, ema=ema, decay=decay,
            restart_after=restart_after, name="quantizer",
        )  # fmt: skip
        self.decoder = grid_decoder(self.likelihood.params_per_pixel)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    @property
    def uniform_kl(self) -> float:
        """KL(one-hot q || uniform prior) per image: 49 log K nats."""
        return math.prod(GRID) * math.log(self.num_codes)

    def call(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        z_e = self.encoder(x)
        z_q, codes = self.quantizer(z_e)
        return self.decoder(z_q), z_e, codes

    def encode(self, x: TensorLike) -> tuple[tf.Tensor, tf.Tensor]:
        """The encoder's grid z_e (n, 7, 7, code_dim) and its codes (n, 7, 7)."""
        z_e = self.encoder(self.as_batch(x))
        return z_e, self.quantizer(z_e)[1]

    def decode(self, codes: TensorLike) -> tf.Tensor:
        """Decoder output (Bernoulli logits by default) for code grids (n, 7, 7)."""
        return self.decoder(self.quantizer.lookup(check_codes(codes, self.num_codes, GRID)))

    def reconstruct(self, x: TensorLike) -> tf.Tensor:
        """The likelihood's mean decoded from each image's codes."""
        return self.likelihood.mean(self.decode(self.encode(x)[1]))

    def sample(self, n: int, prior: CodePrior | None = None) -> tf.Tensor:
        """The likelihood's mean of ``n`` images decoded from codes drawn from ``prior``
        (None: the uniform prior of the training objective)."""
        n = check_int(n, "n", 1, fix="e.g. 64.")
        if prior is not None:
            codes = prior.sample(n, seed=self.seed_generator)
        else:
            codes = keras.random.randint((n, *GRID), 0, self.num_codes, seed=self.seed_generator)
        return self.likelihood.mean(self.decode(codes))

    def update_codebook(self, z_e: tf.Tensor, codes: tf.Tensor) -> None:
        """The quantizer's update after a gradient step (EMA, restarts; see its docstring)."""
        self.quantizer.update(z_e, codes, seed=self.seed_generator)

    def get_config(self) -> dict:
        quantizer = self.quantizer.get_config()
        return {
            "seed": self.seed,
            "likelihood": self.likelihood.get_config(),
            "name": self.name,
            **{
                k: quantizer[k]
                for k in ("num_codes", "code_dim", "ema", "commitment", "decay", "restart_after")
            },
        }


def check_vq_training(config: TrainingConfig) -> TrainingConfig:
    """Refuse a run that weights, warms up or floors a KL, or importance-weights a Gaussian
    latent: a VQ-VAE has neither.

    Taught in notebook 14_vq_vae."""
    defaults = {"beta": 1.0, "kl_warmup_epochs": 0, "free_bits": 0.0, "objective": "elbo"}
    for name, default in defaults.items():
        if getattr(config, name) != default:
            raise ValueError(
                f"{name}={getattr(config, name)!r} is for a Gaussian latent; a VQ-VAE trains no "
                f"KL (its KL is the constant 49 log K): leave {name} at {default!r}."
            )
    return config


def vq_step_terms(
    model: VQVAE, optimizer: keras.optimizers.Optimizer, x: Batch, beta: TensorLike = 1.0,
    *, free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """One gradient step on a VQ-VAE; returns batch means ``(loss, reconstruction, vq)``.

    reconstruction = -log p(x | z_q); vq = the quantizer's loss (codebook loss, unless EMA,
    plus commitment * commitment loss), in the slot where the ELBO step returns the KL; loss =
    reconstruction + vq. Then the quantizer's EMA update and restarts. ``beta`` and
    ``free_bits`` are the ELBO step's, to fit's signature; fit refuses runs that set them
    (:func:`check_vq_training`). Taught in notebook 14_vq_vae.
    """
    with tf.GradientTape() as tape:
        logits, z_e, codes = model(x, training=True)
        reconstruction = -tf.reduce_mean(model.likelihood.log_prob(x, logits))
        vq = tf.reduce_mean(model.quantizer.loss(z_e, codes))
        loss = reconstruction + vq
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    model.update_codebook(z_e, codes)
    return loss, reconstruction, vq


def _log_likelihood_and_codes(model: VQVAE, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    logits, _, codes = model(x)
    return model.likelihood.log_prob(x, logits), codes


def evaluate_vq_elbo(
    model: VQVAE, batches: Iterable[Batch], prior: CodePrior | None = None
) -> dict[str, float]:
    """A VQ-VAE's average ELBO over a dataset, in nats per image, as ``evaluate_elbo`` gives it.

    q(codes | x) is one-hot, so KL(q || p) = -log p(codes): 49 log K for the uniform prior
    (``prior=None``), or ``-prior.log_prob(codes)`` for a learned one. Returns ``{"elbo",
    "log_likelihood", "kl", "images"}``. Taught in notebook 14_vq_vae.
    """
    log_likelihood = code_log_prior = 0.0
    count = 0
    for batch in batches:
        x = tf.reshape(tf.cast(batch, model.compute_dtype), [-1, *model.event_shape])
        log_px, codes = compiled_for(model, _log_likelihood_and_codes)(x)
        log_likelihood += float(np.sum(log_px.numpy(), dtype=np.float64))
        if prior is not None:
            code_log_prior += float(np.sum(prior.log_prob(codes).numpy(), dtype=np.float64))
        count += int(x.shape[0])
    if count == 0:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    kl = model.uniform_kl if prior is None else -code_log_prior / count
    return {
        "elbo": log_likelihood / count - kl,
        "log_likelihood": log_likelihood / count,
        "kl": kl,
        "images": count,
    }


def codebook_usage(codes: TensorLike, num_codes: int) -> tuple[float, float]:
    """(fraction of the codes used, perplexity exp(H)) of the code frequencies in ``codes``.

    H = -sum_k p_k log p_k over the frequencies p_k: perplexity K when every code is used
    equally, 1 when one code is used. Taught in notebook 14_vq_vae.
    """
    num_codes = check_int(num_codes, "num_codes", 1, fix="the quantizer's num_codes.")
    codes = check_codes(codes, num_codes).ravel()
    if codes.size == 0:
        raise ValueError("codes is empty; pass the codes of at least one image.")
    frequencies = np.bincount(codes, minlength=num_codes) / codes.size
    used = frequencies[frequencies > 0]
    return len(used) / num_codes, float(np.exp(-np.sum(used * np.log(used))))
