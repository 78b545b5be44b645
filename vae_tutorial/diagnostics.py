"""How a trained VAE uses its latent space: active units, the KL per dimension, and the
information the codes carry about the images (I(x; z)).

Taught in notebooks 06_latent_space and 09_beta_and_posterior_collapse.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.collapse import kl_divergence_per_dimension
from vae_tutorial.evaluation import posterior_parameters
from vae_tutorial.losses import gaussian_log_density
from vae_tutorial.priors import has_standard_normal_prior
from vae_tutorial.types_ import Batch
from vae_tutorial.validation import check_int

# Floats of log-densities mutual_information holds at once: 2**23 floats = 32 MB.
_FLOATS_PER_CHUNK = 2**23


def posterior_mean_variance(model: keras.Model, batches: Iterable[Batch]) -> np.ndarray:
    """Per latent dimension, the variance across the data of the posterior mean E_q[z | x].

    A dimension whose posterior mean does not move with x carries no information about x:
    it has collapsed to the prior. Taught in notebook 06_latent_space.
    """
    return posterior_parameters(model, batches)[0].var(axis=0)


def active_units(model: keras.Model, batches: Iterable[Batch], threshold: float = 0.01) -> int:
    """How many latent dimensions are active: Cov_x(E_q[z | x]) > ``threshold``.

    The posterior-collapse diagnostic of Burda et al. (2015), who use threshold 0.01.
    Taught in notebook 06_latent_space.
    """
    return int((posterior_mean_variance(model, batches) > threshold).sum())


def kl_per_dimension(model: keras.Model, batches: Iterable[Batch]) -> np.ndarray:
    """Per latent dimension j, the KL term's part averaged over the data, shape (latent_dim,).

    KL_j = mean_n 1/2 (sigma_nj^2 + mu_nj^2 - 1 - log sigma_nj^2) (``losses.
    kl_divergence_per_dimension``); the values sum to the mean KL term. A dimension with
    KL_j near 0 has every posterior at the prior: it has collapsed.
    Only for the N(0, I) prior: the KL to a learned prior does not split by dimension.
    Taught in notebook 09_beta_and_posterior_collapse.
    """
    if not has_standard_normal_prior(model):
        raise ValueError(
            f"kl_per_dimension needs the N(0, I) prior, but this model's prior is "
            f"{model.prior.spec_name!r}: the KL to a learned prior does not split into one "
            "term per dimension. Use vt.active_units or vt.posterior_mean_variance (no prior "
            "needed), or the model's whole KL term from vt.evaluate_elbo."
        )
    mu, log_var = posterior_parameters(model, batches)
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
    mu, log_var = posterior_parameters(model, batches)
    eps = np.random.default_rng(seed).standard_normal((n_samples, *mu.shape), dtype=np.float32)
    z = (mu + np.exp(0.5 * log_var) * eps).reshape(-1, mu.shape[1])
    owner = np.tile(np.arange(len(mu)), n_samples)
    log_n = math.log(len(mu))
    chunk = max(1, _FLOATS_PER_CHUNK // mu.size)  # draws whose (chunk, N, d) terms fit the budget
    total = 0.0
    for start in range(0, len(z), chunk):
        z_chunk, own = z[start : start + chunk], owner[start : start + chunk]
        # log q(z_s | x_m) for every draw s of the chunk and every image m: (chunk, N)
        log_q = gaussian_log_density(z_chunk[:, None, :], mu[None], log_var[None])
        log_aggregate = tf.reduce_logsumexp(log_q, axis=1) - log_n
        log_own = tf.gather(log_q, own, axis=1, batch_dims=1)
        total += float(tf.reduce_sum(log_own - log_aggregate))
    return total / len(z)
