"""Scoring a trained VAE: the held-out ELBO, the importance-weighted bound, active units,
the KL per latent dimension and the information the codes carry about the images.

A deterministic z (the posterior mean) is not the ELBO: every score here samples z.
Taught in notebooks 05_training_on_mnist and 09_beta_and_posterior_collapse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import join_batch, split_batch
from vae_tutorial.compiled import compiled_for
from vae_tutorial.losses import (
    gaussian_log_density,
    kl_divergence,
    kl_divergence_per_dimension,
)
from vae_tutorial.types_ import Batch
from vae_tutorial.validation import check_int, graph_errors_as_value_errors

# Floats of decoder output held at once by iwae_bound: 2**23 floats = 32 MB per tensor.
_SAMPLE_BUDGET = 2**23


def _repeated(values, n_samples):
    """``values`` stacked ``n_samples`` times along the batch axis (sample-major)."""
    return tf.reshape(
        tf.repeat(values[tf.newaxis], n_samples, axis=0),
        tf.concat([[n_samples * tf.shape(values)[0]], tf.shape(values)[1:]], axis=0),
    )


def _log_importance_weights(model, x, labels, mu, log_var, n_samples, seed):
    """log p(x, z_s) - log q(z_s | x) for ``n_samples`` draws z_s ~ q; shape (n_samples, batch).

    With ``labels`` (a conditional model) every density is conditioned on them."""
    batch = tf.shape(x)[0]
    shape = tf.concat([[n_samples], tf.shape(mu)], axis=0)
    eps = tf.random.normal(shape, seed=seed, dtype=mu.dtype)
    z = mu + tf.exp(0.5 * log_var) * eps
    z_flat = tf.reshape(z, [n_samples * batch, -1])
    given = () if labels is None else (_repeated(labels, n_samples),)
    log_px_z = model.log_likelihood(_repeated(x, n_samples), z_flat, *given)
    log_px_z = tf.reshape(log_px_z, [n_samples, batch])
    log_pz = gaussian_log_density(z, 0.0, 0.0)
    log_qz = gaussian_log_density(z, mu, log_var)
    return log_px_z + log_pz - log_qz


def _encode(model, x, labels):
    """q's ``(mu, log_var)``; a conditional model's is q(z | x, y)."""
    return model.encode(x) if labels is None else model.encode(x, labels)


def iwae_bound(model: keras.Model, x: Batch, k: int, seed: int | None = None) -> tf.Tensor:
    """The importance-weighted lower bound on log p(x) with ``k`` samples, per example.

    log p(x) >= L_k = E[ log (1/k) sum_s p(x, z_s) / q(z_s | x) ],  z_s ~ q(z | x).
    L_1 is the ELBO; L_k rises with k toward log p(x) (Burda et al., 2015). Samples are
    drawn in chunks so that k = 5000 on a 784-pixel model needs a few hundred MB at most.
    ``model`` needs ``encode(x) -> (mu, log_var)`` and ``log_likelihood(x, z)``. For a
    conditional model ``x`` is the pair ``(images, labels)`` and the bound is on
    log p(x | y) (notebook 10_conditional_vae). Taught in notebook 05_training_on_mnist.
    """
    k = check_int(k, "k", 1, fix="k is the number of importance samples, e.g. 5000.")
    with graph_errors_as_value_errors():
        x, labels = split_batch(x)
        x = tf.convert_to_tensor(x, tf.float32)
        mu, log_var = _encode(model, x, labels)
        values_per_sample = max(1, int(np.prod(x.shape)))
        chunk = max(1, min(k, _SAMPLE_BUDGET // values_per_sample))
        log_weights = tf.concat(
            [
                _log_importance_weights(model, x, labels, mu, log_var, min(chunk, k - start), seed)
                for start in range(0, k, chunk)
            ],
            axis=0,
        )
        return tf.reduce_logsumexp(log_weights, axis=0) - math.log(k)


def _as_model_batch(model, batch):
    """A dataset's batch reshaped for ``model``: images, or ``(images, labels)``."""
    x, labels = split_batch(batch)
    return join_batch(tf.reshape(tf.cast(x, model.compute_dtype), [-1, *model.event_shape]), labels)


def _elbo_sums(model, batches):
    """Sums over a dataset of per-image ELBO, log p(x|z) and KL, and the image count."""
    totals = tf.zeros([4])
    for batch in batches:
        batch = _as_model_batch(model, batch)
        x, _ = split_batch(batch)
        logits, mu, log_var = model(batch)
        log_px_z = model.likelihood.log_prob(x, logits)
        kl = kl_divergence(mu, log_var)
        count = tf.cast(tf.shape(x)[0], tf.float32)
        totals += tf.stack(
            [tf.reduce_sum(log_px_z - kl), tf.reduce_sum(log_px_z), tf.reduce_sum(kl), count]
        )
    return totals


def evaluate_elbo(model: keras.Model, batches: Iterable[Batch]) -> dict[str, float]:
    """Average ELBO over a dataset of batches, in nats per image (negative; higher is better).

    Returns ``{"elbo", "log_likelihood", "kl", "images"}``. One z is sampled per image, as
    in training, and the whole pass runs inside one ``tf.function``.
    Taught in notebook 05_training_on_mnist.
    """
    with graph_errors_as_value_errors():
        sums = compiled_for(model, _elbo_sums)(batches)
        elbo, log_px_z, kl, count = sums.numpy().tolist()
    if count == 0:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    return {
        "elbo": elbo / count,
        "log_likelihood": log_px_z / count,
        "kl": kl / count,
        "images": int(count),
    }


def evaluate_iwae(
    model: keras.Model, batches: Iterable[Batch], k: int, seed: int | None = None
) -> float:
    """Average importance-weighted bound L_k over a dataset, in nats per image.

    With large k (1,000-5,000) this is the standard estimate of the test log-likelihood.
    Taught in notebook 05_training_on_mnist.
    """
    total, count = 0.0, 0
    for batch in batches:
        batch = _as_model_batch(model, batch)
        total += float(tf.reduce_sum(iwae_bound(model, batch, k, seed=seed)))
        count += int(split_batch(batch)[0].shape[0])
    if count == 0:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    return total / count


def posterior_mean_variance(model: keras.Model, batches: Iterable[Batch]) -> np.ndarray:
    """Per latent dimension, the variance across the data of the posterior mean E_q[z | x].

    A dimension whose posterior mean does not move with x carries no information about x:
    it has collapsed to the prior. Taught in notebook 06_latent_space.
    """
    return _posterior_parameters(model, batches)[0].var(axis=0)


def active_units(model: keras.Model, batches: Iterable[Batch], threshold: float = 0.01) -> int:
    """How many latent dimensions are active: Cov_x(E_q[z | x]) > ``threshold``.

    The posterior-collapse diagnostic of Burda et al. (2015), who use threshold 0.01.
    Taught in notebook 06_latent_space.
    """
    return int((posterior_mean_variance(model, batches) > threshold).sum())


def _posterior_parameters(model, batches) -> tuple[np.ndarray, np.ndarray]:
    """Every image's posterior (mu, log_var), each of shape (N, latent_dim)."""
    encoded = [_encode(model, *split_batch(_as_model_batch(model, b))) for b in batches]
    if not encoded:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    mu, log_var = (np.concatenate([part[i].numpy() for part in encoded]) for i in (0, 1))
    return mu, log_var


def kl_per_dimension(model: keras.Model, batches: Iterable[Batch]) -> np.ndarray:
    """Per latent dimension j, the KL term's part averaged over the data, shape (latent_dim,).

    KL_j = mean_n 1/2 (sigma_nj^2 + mu_nj^2 - 1 - log sigma_nj^2) (``losses.
    kl_divergence_per_dimension``); the values sum to the mean KL term. A dimension with
    KL_j near 0 has every posterior at the prior: it has collapsed.
    Taught in notebook 09_beta_and_posterior_collapse.
    """
    mu, log_var = _posterior_parameters(model, batches)
    return kl_divergence_per_dimension(mu, log_var).numpy().mean(axis=0)


def mutual_information(
    model: keras.Model, batches: Iterable[Batch], n_samples: int = 1, seed: int = 0
) -> float:
    """Estimate of I(x; z) in nats under q(z | x) p_data(x), over the N images in ``batches``.

    I = mean_n E_{z ~ q(z|x_n)} [ log q(z | x_n) - log q(z) ],
    q(z) = 1/N sum_m q(z | x_m), the aggregate posterior as the mixture over the same N
    images (Hoffman & Johnson 2016, "ELBO surgery": mean KL term = I + KL(q(z) || p(z))).
    Each term is at most log N (q(z | x_n) is one of the N components), so the estimate
    saturates at log N: use N well above exp(I). Over draws of the images it is on average a
    lower bound on I (the InfoNCE bound with critic log q(z|x), Poole et al. 2019).
    ``n_samples`` draws of z per image, from ``numpy.random.default_rng(seed)``; the
    densities of every draw under all N components are computed a chunk of draws at a time,
    a few tens of MB each. Taught in notebook 09_beta_and_posterior_collapse.
    """
    n_samples = check_int(n_samples, "n_samples", 1, fix="e.g. 1 (one z per image).")
    mu, log_var = _posterior_parameters(model, batches)
    eps = np.random.default_rng(seed).standard_normal((n_samples, *mu.shape), dtype=np.float32)
    z = (mu + np.exp(0.5 * log_var) * eps).reshape(-1, mu.shape[1])
    owner = np.tile(np.arange(len(mu)), n_samples)
    log_n = math.log(len(mu))
    chunk = max(1, _SAMPLE_BUDGET // mu.size)  # draws whose (chunk, N, d) terms fit the budget
    total = 0.0
    for start in range(0, len(z), chunk):
        z_chunk, own = z[start : start + chunk], owner[start : start + chunk]
        # log q(z_s | x_m) for every draw s of the chunk and every image m: (chunk, N)
        log_q = gaussian_log_density(z_chunk[:, None, :], mu[None], log_var[None])
        log_aggregate = tf.reduce_logsumexp(log_q, axis=1) - log_n
        log_own = tf.gather(log_q, own, axis=1, batch_dims=1)
        total += float(tf.reduce_sum(log_own - log_aggregate))
    return total / len(z)
