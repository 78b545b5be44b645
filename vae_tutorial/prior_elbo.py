"""The ELBO against a learned prior: the GradientTape step and the held-out score.

With p(z) other than N(0, I) the KL term has no closed form, so both estimate it from the
z that reparameterization draws anyway: KL ~ log q(z | x) - log p(z) (``priors.monte_carlo_kl``),
one sample per image, an unbiased estimate whose gradient trains the prior's weights with the
encoder and decoder. ``objectives`` picks them for a model whose prior is learned.
Taught in notebook 13_priors_and_hierarchy.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import tensorflow as tf

from vae_tutorial.batching import split_batch
from vae_tutorial.evaluation import evaluate_elbo
from vae_tutorial.losses import reparameterize
from vae_tutorial.priors import monte_carlo_kl
from vae_tutorial.types_ import Batch, TensorLike


def check_no_free_bits(free_bits: TensorLike) -> None:
    """Refuse free bits with a learned prior: its KL does not split into one per dimension."""
    if not (isinstance(free_bits, (int, float)) and free_bits == 0):
        raise ValueError(
            f"free_bits={free_bits!r} needs the KL per latent dimension, which a learned prior "
            "(a mixture over all dimensions) does not define; use free_bits=0, or prior='normal'."
        )


def prior_elbo_terms(model: keras.Model, x: Batch) -> tuple[tf.Tensor, tf.Tensor]:
    """Per image: log p(x | z) and the one-sample KL estimate at the same z ~ q(z | x).

    The forward pass of ``model.call`` (the same noise), written out to keep z.
    """
    images, labels = split_batch(x)
    if labels is not None:
        raise ValueError(
            "a learned prior is p(z), not p(z | y): train a ConditionalVAE with prior='normal'."
        )
    mu, log_var = model.encoder(images)
    z = reparameterize(mu, log_var, seed=model.seed_generator)
    log_px_z = model.likelihood.log_prob(images, model.decoder(z))
    return log_px_z, monte_carlo_kl(z, mu, log_var, model.prior)


def prior_elbo_step_terms(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Batch, beta: TensorLike = 1.0,
    *, free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """One gradient step on the negative ELBO against ``model.prior``; returns the batch means
    ``(loss, reconstruction, kl)``, ``loss = reconstruction + beta * kl``.

    As ``step.train_step_terms``, with the KL estimated by :func:`monte_carlo_kl` (its
    gradient reaches the prior's weights). ``free_bits`` must be 0 (:func:`check_no_free_bits`).
    Taught in notebook 13_priors_and_hierarchy.
    """
    check_no_free_bits(free_bits)
    with tf.GradientTape() as tape:
        log_px_z, kl = prior_elbo_terms(model, x)
        reconstruction, kl = -tf.reduce_mean(log_px_z), tf.reduce_mean(kl)
        loss = reconstruction + tf.cast(beta, kl.dtype) * kl
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return loss, reconstruction, kl


def evaluate_prior_elbo(model: keras.Model, batches: Iterable[Batch]) -> dict[str, float]:
    """Average ELBO over a dataset against ``model.prior``, in nats per image, as
    ``evaluate_elbo`` returns it (``{"elbo", "log_likelihood", "kl", "images"}``), with the
    KL estimated at one z per image. Taught in notebook 13_priors_and_hierarchy."""
    return evaluate_elbo(model, batches, prior_elbo_terms)
