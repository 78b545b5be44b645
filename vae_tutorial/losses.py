"""The pieces of the VAE objective: sampling, KL divergence, likelihood and the loss.

All per-example quantities are in nats and have shape ``(batch,)``; the loss averages them
over the batch. Taught in notebooks 01_reparameterization_trick and 02_the_elbo_loss.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from vae_tutorial.collapse import free_bits_kl
from vae_tutorial.types_ import Seed, TensorLike
from vae_tutorial.validation import check_finite_number, check_pixels, check_same_shape

if TYPE_CHECKING:  # likelihoods imports this module
    from vae_tutorial.likelihoods import Likelihood

LOG_2PI = math.log(2.0 * math.pi)


# What reparameterize draws eps with: keras.random.normal. fit's fast runner swaps in a
# drawer of the same numbers that XLA compiles well (vae_tutorial/fast/noise.py).
_normal = contextvars.ContextVar("normal", default=keras.random.normal)


@contextlib.contextmanager
def normal_sampler(sampler: Callable[..., tf.Tensor]) -> Iterator[None]:
    """Within this block :func:`reparameterize` draws eps with ``sampler``, a function called
    as ``keras.random.normal(shape, dtype=..., seed=...)`` is and giving the same numbers."""
    token = _normal.set(sampler)
    try:
        yield
    finally:
        _normal.reset(token)


def reparameterize(mu: TensorLike, log_var: TensorLike, seed: Seed = None) -> tf.Tensor:
    """Draw z ~ N(mu, diag(exp(log_var))) as ``mu + exp(log_var / 2) * eps``, eps ~ N(0, I).

    The noise is drawn outside the parameters, so gradients flow to ``mu`` and ``log_var``.
    ``seed`` may be a ``keras.random.SeedGenerator`` (checkpointable) or an int: eps is then
    ``keras.random.normal(shape, seed=seed)``; with None the global TensorFlow seed applies.
    Taught in notebook 01_reparameterization_trick.
    """
    mu = tf.convert_to_tensor(mu)
    log_var = tf.convert_to_tensor(log_var, dtype=mu.dtype)
    if seed is None:
        eps = tf.random.normal(tf.shape(mu), dtype=mu.dtype)
    else:
        eps = _normal.get()(tf.shape(mu), dtype=mu.dtype, seed=seed)
    return mu + tf.exp(0.5 * log_var) * eps


def kl_divergence(mu: TensorLike, log_var: TensorLike) -> tf.Tensor:
    """Closed-form KL(N(mu, diag(exp(log_var))) || N(0, I)) per example, shape ``(batch,)``.

    KL = 1/2 * sum_j (exp(log_var_j) + mu_j^2 - 1 - log_var_j). Taught in notebook
    02_the_elbo_loss.
    """
    mu = tf.convert_to_tensor(mu)
    log_var = tf.convert_to_tensor(log_var, dtype=mu.dtype)
    return 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mu) - 1.0 - log_var, axis=-1)


def sum_over_pixels(values: tf.Tensor) -> tf.Tensor:
    """Per example: the sum over every axis but the first (the batch axis), shape ``(batch,)``.

    A log-likelihood of independent pixels is the sum of the pixels' own. Taught in notebook
    02_the_elbo_loss.
    """
    return tf.reduce_sum(values, axis=list(range(1, values.shape.rank)))


def bernoulli_log_likelihood(x: TensorLike, logits: TensorLike) -> tf.Tensor:
    """log p(x | z) for independent Bernoulli pixels with the given logits, shape ``(batch,)``.

    Per pixel: x * logits - softplus(logits), computed by TensorFlow's stable
    ``sigmoid_cross_entropy_with_logits``, so it stays finite for any logit (no log(0)).
    ``x`` must be in [0, 1]; for grey levels this is the continuous cross-entropy, not a
    proper likelihood. Taught in notebook 02_the_elbo_loss.
    """
    logits = tf.convert_to_tensor(logits)
    x = tf.cast(x, logits.dtype)
    check_same_shape(x, logits)
    x = check_pixels(x)
    return -sum_over_pixels(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits))


def gaussian_log_density(z: TensorLike, mu: TensorLike, log_var: TensorLike) -> tf.Tensor:
    """log N(z; mu, diag(exp(log_var))) summed over the last axis.

    Used for log p(z) (mu = 0, log_var = 0) and log q(z | x) in the importance-weighted
    bound. Taught in notebook 05_training_on_mnist.
    """
    z = tf.convert_to_tensor(z)
    mu = tf.cast(mu, z.dtype)
    log_var = tf.cast(log_var, z.dtype)
    return -0.5 * tf.reduce_sum(LOG_2PI + log_var + tf.square(z - mu) * tf.exp(-log_var), axis=-1)


def negative_elbo_terms(
    x: TensorLike, logits: TensorLike, mu: TensorLike, log_var: TensorLike, beta: TensorLike = 1.0,
    *, likelihood: Likelihood | None = None, free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """Batch means of the loss, its reconstruction term -log p(x|z), and the KL term.

    Returns ``(loss, reconstruction, kl)`` with ``loss = reconstruction + beta * kl``.
    ``likelihood``: the decoder's distribution (``model.likelihood``; notebook
    08_likelihoods_for_grey_pixels), None for Bernoulli logits. With ``free_bits`` > 0 (nats
    per latent dimension) the loss charges ``collapse.free_bits_kl`` for the KL, while the
    returned ``kl`` stays the true KL: what the model has, not what it was charged.
    Taught in notebooks 02_the_elbo_loss and 09_beta_and_posterior_collapse (free bits).
    """
    if isinstance(free_bits, (int, float)):
        check_finite_number(free_bits, "free_bits", fix="0 turns free bits off; e.g. 0.25.")
    _, reconstruction, kl = negative_elbo_per_example(x, logits, mu, log_var, likelihood=likelihood)
    reconstruction, kl = tf.reduce_mean(reconstruction), tf.reduce_mean(kl)
    mu, log_var = tf.cast(mu, kl.dtype), tf.cast(log_var, kl.dtype)
    free_bits_off = isinstance(free_bits, (int, float)) and free_bits == 0  # a tensor: on
    trained_kl = kl if free_bits_off else free_bits_kl(mu, log_var, free_bits)
    beta = tf.cast(beta, kl.dtype)
    return reconstruction + beta * trained_kl, reconstruction, kl


def negative_elbo_per_example(
    x: TensorLike, logits: TensorLike, mu: TensorLike, log_var: TensorLike, beta: TensorLike = 1.0,
    *, likelihood: Likelihood | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """Per-example ``(loss, reconstruction, kl)``, each of shape ``(batch,)``, in nats.

    loss_i = -log p(x_i | z_i) + beta * KL(q(z | x_i) || p(z)); :func:`negative_elbo_terms`
    gives their batch means. A distributed step needs the per-example values: each replica
    sums its share and divides by the global batch size (``tf.nn.compute_average_loss``).
    ``likelihood`` as in :func:`negative_elbo_terms`. Taught in notebook
    11_distributed_training.
    """
    log_prob = bernoulli_log_likelihood if likelihood is None else likelihood.log_prob
    reconstruction = -log_prob(x, logits)
    dtype = reconstruction.dtype
    kl = kl_divergence(tf.cast(mu, dtype), tf.cast(log_var, dtype))
    return reconstruction + tf.cast(beta, dtype) * kl, reconstruction, kl


def vae_loss(
    x: TensorLike, logits: TensorLike, mu: TensorLike, log_var: TensorLike, beta: TensorLike = 1.0,
    *, likelihood: Likelihood | None = None,
) -> tf.Tensor:  # fmt: skip
    """The negative ELBO in nats per image: sum over pixels, mean over the batch.

    ``vae_loss(x, *vae(x))`` = mean_i [ -log p(x_i | z_i) + beta * KL(q(z | x_i) || p(z)) ].
    Sanity check: an untrained model outputs logits near 0, so every pixel costs log 2 and
    the loss starts near 784 * log 2 = 543 nats on MNIST. Summing over pixels matters: a
    mean over pixels would silently weight the KL term 784 times too much (beta = 784).
    ``likelihood`` as in :func:`negative_elbo_terms` (None: Bernoulli logits).
    Taught in notebook 02_the_elbo_loss.
    """
    if isinstance(beta, (int, float)):
        check_finite_number(beta, "beta")
    return negative_elbo_terms(x, logits, mu, log_var, beta, likelihood=likelihood)[0]
