"""The VQ-VAE: a grid of discrete codes in place of a Gaussian z, its training step and bound.

The encoder maps a 28x28 image to a 7x7 grid of vectors z_e; the :class:`VectorQuantizer`
replaces each by its nearest codebook vector e_k, whose index k is that position's code; the
decoder reads the quantized grid z_q (van den Oord et al. 2017, "Neural discrete
representation learning"). The nearest neighbour has no gradient, so the straight-through
estimator z_e + sg(z_q - z_e) hands the decoder's gradient at z_q to z_e unchanged. The
codebook learns from ||sg(z_e) - e||^2 (or, with ``ema=True``, as moving averages of the
vectors each code is given; Razavi et al. 2019), and the encoder commits to its codes
through beta ||z_e - sg(e)||^2.

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
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import Batch, Seed, TensorLike
from vae_tutorial.validation import check_finite_number, check_int

GRID = (7, 7)  # two stride-2 convolutions: 28 -> 14 -> 7


class CodePrior(Protocol):
    """A distribution over code grids, e.g. ``pixelcnn.PixelCNNPrior``."""

    def log_prob(self, codes: TensorLike) -> tf.Tensor: ...

    def sample(self, n: int, seed: Seed = None) -> tf.Tensor: ...


def check_codes(
    codes: TensorLike, num_codes: int, grid: tuple[int, ...] | None = None
) -> np.ndarray:
    """Require ints in [0, num_codes) (and, given ``grid``, of shape (n, *grid)); return them
    as an int32 array. Taught in notebook 14_vq_vae."""
    array = np.asarray(codes)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"codes must be ints (code indices), got dtype {array.dtype}.")
    if grid is not None and (array.ndim != len(grid) + 1 or array.shape[1:] != tuple(grid)):
        raise ValueError(
            f"codes must have shape (n, {', '.join(map(str, grid))}), got {array.shape}."
        )
    if array.size and (array.min() < 0 or array.max() >= num_codes):
        raise ValueError(
            f"codes must lie in [0, {num_codes - 1}], got {array.min()}..{array.max()}; "
            "use the quantizer's num_codes."
        )
    return array.astype(np.int32)


def nearest_codes(z_e: TensorLike, codebook: TensorLike) -> tf.Tensor:
    """The index of the nearest codebook row (squared Euclidean distance) for each vector.

    ``z_e``: (..., D), ``codebook``: (K, D); returns int32 (...). ``||z - e||^2`` is expanded as
    ``||z||^2 - 2 z.e + ||e||^2``, one matrix product for all pairs. Taught in notebook 14_vq_vae.
    """
    z_e, codebook = tf.convert_to_tensor(z_e), tf.convert_to_tensor(codebook)
    flat = tf.reshape(z_e, [-1, tf.shape(codebook)[1]])
    distances = (
        tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)
        - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
        + tf.reduce_sum(tf.square(codebook), axis=1)
    )
    codes = tf.argmin(distances, axis=1, output_type=tf.int32)
    return tf.reshape(codes, tf.shape(z_e)[:-1])


def straight_through(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """z_q in the forward pass, the identity in the backward pass: z_e + sg(z_q - z_e).

    Taught in notebook 14_vq_vae."""
    return z_e + tf.stop_gradient(z_q - z_e)


def _per_image_sum(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def codebook_loss(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """``||sg(z_e) - z_q||^2`` per image, summed over the grid: moves the codebook only.

    Taught in notebook 14_vq_vae."""
    return _per_image_sum(tf.square(tf.stop_gradient(z_e) - z_q))


def commitment_loss(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """``||z_e - sg(z_q)||^2`` per image, summed over the grid: moves the encoder only.

    Taught in notebook 14_vq_vae."""
    return _per_image_sum(tf.square(z_e - tf.stop_gradient(z_q)))


class VectorQuantizer(keras.layers.Layer):
    """A codebook of ``num_codes`` vectors of ``code_dim``: ``z_q, codes = quantizer(z_e)``.

    ``z_q`` is the nearest codebook vector at each position, with the straight-through
    gradient; ``loss(z_e, codes)`` is the per-image codebook loss plus ``commitment`` times
    the commitment loss. With ``ema=True`` the codebook is no trainable weight: ``update``
    sets it after each step to the moving averages (``decay``) of the vectors assigned to each
    code, N_k <- g N_k + (1 - g) n_k, m_k <- g m_k + (1 - g) sum z_e, e_k = m_k / N'_k with the
    Laplace-smoothed counts N'_k = (N_k + eps) / (N + K eps) * N; the codebook loss is then
    left out. ``restart_after``: ``update`` moves a code unused for that many steps onto a
    random encoder output of the batch (None: never). Taught in notebook 14_vq_vae.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        *,
        commitment: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_codes = check_int(num_codes, "num_codes", 2, fix="e.g. 64.")
        self.code_dim = check_int(code_dim, "code_dim", 1, fix="e.g. 16.")
        self.commitment = check_finite_number(commitment, "commitment", fix="e.g. 0.25.")
        if not isinstance(ema, bool):
            raise TypeError(f"ema must be True or False, got {ema!r}.")
        self.ema = ema
        self.decay = check_finite_number(decay, "decay", fix="e.g. 0.99.")
        if self.decay >= 1.0:
            raise ValueError(f"decay must be below 1, got {decay}; e.g. 0.99.")
        self.epsilon = check_finite_number(epsilon, "epsilon", exclusive=True, fix="e.g. 1e-5.")
        if restart_after is not None:
            restart_after = check_int(restart_after, "restart_after", 1, fix="or None: never.")
        self.restart_after = restart_after

    def build(self, input_shape: tuple) -> None:
        k, d = self.num_codes, self.code_dim
        if input_shape[-1] != d:
            raise ValueError(f"the quantizer takes vectors of code_dim={d}, got {input_shape}.")
        spread = keras.initializers.RandomUniform(-1.0 / k, 1.0 / k)  # the article's
        self.codebook = self.add_weight((k, d), spread, trainable=not self.ema, name="codebook")
        if self.ema:  # counts 1 and sums the codebook: the averages start at the codebook
            self.ema_counts = self.add_weight((k,), "ones", trainable=False, name="ema_counts")
            self.ema_sums = self.add_weight(
                (k, d), lambda shape, dtype=None: tf.identity(self.codebook), trainable=False,
                name="ema_sums",
            )  # fmt: skip
        if self.restart_after is not None:
            self.unused_steps = self.add_weight(
                (k,), "zeros", trainable=False, dtype="int32", name="unused_steps"
            )

    def call(self, z_e: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        codes = nearest_codes(z_e, self.codebook)
        return straight_through(z_e, self.lookup(codes)), codes

    def lookup(self, codes: TensorLike) -> tf.Tensor:
        """The codebook vectors of ``codes`` (any shape of ints): shape (..., code_dim)."""
        return tf.gather(self.codebook, codes)

    def loss(self, z_e: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
        """Per image: codebook loss (not with ``ema``) + ``commitment`` * commitment loss."""
        z_q = self.lookup(codes)
        loss = self.commitment * commitment_loss(z_e, z_q)
        return loss if self.ema else loss + codebook_loss(z_e, z_q)

    def update(self, z_e: tf.Tensor, codes: tf.Tensor, seed: Seed = None) -> None:
        """After a gradient step: the EMA codebook update (``ema``) and dead-code restarts
        (``restart_after``), from the batch's encoder outputs and their codes."""
        flat = tf.reshape(tf.stop_gradient(z_e), [-1, self.code_dim])
        assigned = tf.one_hot(tf.reshape(codes, [-1]), self.num_codes, dtype=flat.dtype)
        counts = tf.reduce_sum(assigned, axis=0)
        if self.ema:
            self._ema_update(counts, tf.matmul(assigned, flat, transpose_a=True))
        if self.restart_after is not None:
            self._restart_dead_codes(flat, counts, seed)

    def _ema_update(self, counts: tf.Tensor, sums: tf.Tensor) -> None:
        g = self.decay
        self.ema_counts.assign(g * self.ema_counts.value + (1.0 - g) * counts)
        self.ema_sums.assign(g * self.ema_sums.value + (1.0 - g) * sums)
        total = tf.reduce_sum(self.ema_counts.value)
        smoothed = (self.ema_counts.value + self.epsilon) / (
            total + self.num_codes * self.epsilon
        ) * total  # fmt: skip
        self.codebook.assign(self.ema_sums.value / smoothed[:, None])

    def _restart_dead_codes(self, flat: tf.Tensor, counts: tf.Tensor, seed: Seed) -> None:
        unused = tf.where(counts > 0, 0, self.unused_steps.value + 1)
        dead = unused >= self.restart_after
        picks = keras.random.randint((self.num_codes,), 0, tf.shape(flat)[0], seed=seed)
        fresh = tf.gather(flat, picks)
        self.codebook.assign(tf.where(dead[:, None], fresh, self.codebook.value))
        if self.ema:  # the averages start again at the new vector
            self.ema_counts.assign(tf.where(dead, 1.0, self.ema_counts.value))
            self.ema_sums.assign(tf.where(dead[:, None], fresh, self.ema_sums.value))
        self.unused_steps.assign(tf.where(dead, 0, unused))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_codes": self.num_codes,
            "code_dim": self.code_dim,
            "commitment": self.commitment,
            "ema": self.ema,
            "decay": self.decay,
            "epsilon": self.epsilon,
            "restart_after": self.restart_after,
        }


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
