"""Scoring a trained VAE: the held-out ELBO and the importance-weighted bound.

A deterministic z (the posterior mean) is not the ELBO: every score here samples z.
Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import join_batch, split_batch
from vae_tutorial.compiled import compiled_for
from vae_tutorial.losses import gaussian_log_density, kl_divergence
from vae_tutorial.priors import log_prior
from vae_tutorial.types_ import Batch
from vae_tutorial.validation import check_int, graph_errors_as_value_errors

ElboTerms = Callable[[keras.Model, Batch], tuple[tf.Tensor, tf.Tensor]]
# Floats of decoder output held at once by iwae_bound: 2**23 floats = 32 MB per tensor.
_SAMPLE_BUDGET = 2**23


def _repeated(values, n_samples):
    """``values`` stacked ``n_samples`` times along the batch axis (sample-major)."""
    return tf.tile(values, [n_samples] + [1] * (len(values.shape) - 1))


def log_joint_terms(model, x, z, labels=None):
    """log p(x | z_s) and log p(z_s), each (n_samples, batch), for ``z`` (n_samples, batch,
    latent), given ``labels`` if any. Taught in notebook 12_importance_weighted_training."""
    n_samples, batch = tf.shape(z)[0], tf.shape(z)[1]
    given = () if labels is None else (_repeated(labels, n_samples),)
    z_flat = tf.reshape(z, [n_samples * batch, -1])
    log_px_z = model.log_likelihood(_repeated(x, n_samples), z_flat, *given)
    return tf.reshape(log_px_z, [n_samples, batch]), log_prior(model, z)


def _log_importance_weights(model, x, labels, mu, log_var, n_samples, seed):
    """log p(x, z_s) - log q(z_s | x) for ``n_samples`` draws z_s ~ q; shape (n_samples, batch)."""
    shape = tf.concat([[n_samples], tf.shape(mu)], axis=0)
    z = mu + tf.exp(0.5 * log_var) * tf.random.normal(shape, seed=seed, dtype=mu.dtype)
    log_px_z, log_pz = log_joint_terms(model, x, z, labels)
    return log_px_z + log_pz - gaussian_log_density(z, mu, log_var)


def _encode(model, x, labels):
    """q's ``(mu, log_var)``; a conditional model's is q(z | x, y)."""
    return model.encode(x) if labels is None else model.encode(x, labels)


def iwae_bound(model: keras.Model, x: Batch, k: int, seed: int | None = None) -> tf.Tensor:
    """The importance-weighted lower bound on log p(x) with ``k`` samples, per example.

    log p(x) >= L_k = E[ log (1/k) sum_s p(x, z_s) / q(z_s | x) ],  z_s ~ q(z | x).
    L_1 is the ELBO; L_k rises with k toward log p(x) (Burda et al., 2015). Samples are
    drawn in chunks so that k = 5000 on a 784-pixel model needs a few hundred MB at most.
    ``seed`` is ``tf.random.normal``'s op seed: after ``keras.utils.set_random_seed`` a fresh
    process repeats the numbers, while a second call in the same process draws new ones.
    ``model`` needs ``encode(x) -> (mu, log_var)`` and ``log_likelihood(x, z)``; p(z) is its
    ``prior`` (notebook 13_priors_and_hierarchy), N(0, I) if it has none. For a conditional
    model ``x`` is ``(images, labels)`` and the bound is on log p(x | y) (notebook
    10_conditional_vae). Taught in notebook 05_training_on_mnist.
    """
    if hasattr(model, "iwae_bound"):  # a model with a bound of its own: HierarchicalVAE
        return model.iwae_bound(x, k, seed=seed)
    k = check_int(k, "k", 1, fix="k is the number of importance samples, e.g. 5000.")
    with graph_errors_as_value_errors():
        x, labels = split_batch(x)
        x = tf.convert_to_tensor(x, tf.float32)
        mu, log_var = _encode(model, x, labels)
        chunk = max(1, min(k, _SAMPLE_BUDGET // max(1, int(np.prod(x.shape)))))
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


def closed_form_elbo_terms(model: keras.Model, batch: Batch) -> tuple[tf.Tensor, tf.Tensor]:
    """Per image: log p(x | z) at one z ~ q(z | x), and the closed-form KL to N(0, I)."""
    logits, mu, log_var = model(batch)
    return model.likelihood.log_prob(split_batch(batch)[0], logits), kl_divergence(mu, log_var)


def _elbo_sums(model, batches, elbo_terms):
    """Sums over a dataset of per-image ELBO, log p(x|z) and KL, and the image count."""
    totals = tf.zeros([4])
    for batch in batches:
        log_px_z, kl = elbo_terms(model, _as_model_batch(model, batch))
        count = tf.cast(tf.shape(kl)[0], tf.float32)
        totals += tf.stack(
            [tf.reduce_sum(log_px_z - kl), tf.reduce_sum(log_px_z), tf.reduce_sum(kl), count]
        )
    return totals


def evaluate_elbo(
    model: keras.Model, batches: Iterable[Batch], elbo_terms: ElboTerms = closed_form_elbo_terms
) -> dict[str, float]:
    """Average ELBO over a dataset of batches, in nats per image (negative; higher is better).

    Returns ``{"elbo", "log_likelihood", "kl", "images"}``. One z is sampled per image, as
    in training, and the whole pass runs inside one ``tf.function``. ``elbo_terms(model,
    batch)`` gives each image's log p(x|z) and KL (notebook 13 estimates the KL to a learned
    prior). Taught in notebook 05_training_on_mnist.
    """
    with graph_errors_as_value_errors():
        sums = compiled_for(model, _elbo_sums)(batches, elbo_terms)
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


def posterior_parameters(
    model: keras.Model, batches: Iterable[Batch]
) -> tuple[np.ndarray, np.ndarray]:
    """Every image's posterior (mu, log_var), each of shape (N, latent_dim).

    What the diagnostics of notebooks 06_latent_space and 09_beta_and_posterior_collapse
    start from (``diagnostics``).
    """
    encoded = [_encode(model, *split_batch(_as_model_batch(model, b))) for b in batches]
    if not encoded:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    mu, log_var = (np.concatenate([part[i].numpy() for part in encoded]) for i in (0, 1))
    return mu, log_var
