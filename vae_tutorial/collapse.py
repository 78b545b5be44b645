"""Posterior collapse, per latent dimension: each dimension's KL, and free bits against it.

Taught in notebook 09_beta_and_posterior_collapse.
"""

from __future__ import annotations

import tensorflow as tf

from vae_tutorial.types_ import TensorLike


def kl_divergence_per_dimension(mu: TensorLike, log_var: TensorLike) -> tf.Tensor:
    """Closed-form KL(q(z_j | x) || N(0, 1)) of each latent dimension, shape ``(batch, d)``.

    KL_j = 1/2 * (exp(log_var_j) + mu_j^2 - 1 - log_var_j), >= 0, and 0 only at the prior;
    summed over j it is ``losses.kl_divergence``. Taught in notebook
    09_beta_and_posterior_collapse.
    """
    mu = tf.convert_to_tensor(mu)
    log_var = tf.convert_to_tensor(log_var, dtype=mu.dtype)
    return 0.5 * (tf.exp(log_var) + tf.square(mu) - 1.0 - log_var)


def free_bits_kl(mu: TensorLike, log_var: TensorLike, free_bits: TensorLike) -> tf.Tensor:
    """The KL term with free bits: sum_j max(free_bits, mean over the batch of KL_j).

    Kingma et al. (2016, "Improved variational inference with inverse autoregressive flow",
    appendix C, "free bits"), with one group per latent dimension: a dimension whose KL,
    averaged over the batch, is below ``free_bits`` nats costs exactly ``free_bits`` and gets
    no gradient from the KL term, so the optimizer has no reason to push it to the prior.
    With ``free_bits = 0`` this is the batch mean of ``losses.kl_divergence``.
    Taught in notebook 09_beta_and_posterior_collapse.
    """
    per_dimension = tf.reduce_mean(kl_divergence_per_dimension(mu, log_var), axis=0)
    return tf.reduce_sum(tf.maximum(tf.cast(free_bits, per_dimension.dtype), per_dimension))
