"""A two-layer hierarchical VAE with top-down inference: the ladder VAE (Sønderby et al. 2016).

The generative model runs down from the top: p(z2) = N(0, I), p(z1 | z2) a diagonal Gaussian
whose mean and log-variance an MLP computes from z2, p(x | z1) the decoder. Inference runs
down the same way: a bottom-up pass over x gives each layer an estimate (mu_hat, var_hat);
q(z2 | x) is the top's estimate, and q(z1 | x, z2) the precision-weighted combination of the
bottom's estimate with the prior p(z1 | z2). The ELBO is

    log p(x) >= E_q[log p(x | z1)] - E_q(z2|x)[KL(q(z1 | x, z2) || p(z1 | z2))]
                - KL(q(z2 | x) || N(0, I)),

both KLs in closed form between diagonal Gaussians, the outer expectation over one z2 per
image. Taught in notebook 13_priors_and_hierarchy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.collapse import kl_divergence_per_dimension
from vae_tutorial.compiled import compiled_for
from vae_tutorial.likelihoods import Likelihood
from vae_tutorial.losses import gaussian_log_density, reparameterize
from vae_tutorial.models import Decoder, Encoder, VariationalAutoencoder
from vae_tutorial.types_ import Batch, Seed, TensorLike
from vae_tutorial.validation import check_int, check_latent_dim, graph_errors_as_value_errors

# Floats of decoder output held at once by hierarchical_iwae_bound: 2**23 floats = 32 MB.
_FLOATS_PER_CHUNK = 2**23


class Gaussian(NamedTuple):
    """A diagonal Gaussian: its ``mu`` and ``log_var``, each of shape ``(batch, d)``.

    Taught in notebook 13_priors_and_hierarchy."""

    mu: tf.Tensor
    log_var: tf.Tensor


class LadderPass(NamedTuple):
    """One pass down the model for a batch: the draws and the distributions they came from.

    ``logits`` are p(x | z1)'s parameters; ``q1`` is q(z1 | x, z2), ``p1`` the prior
    p(z1 | z2) and ``q2`` q(z2 | x). Taught in notebook 13_priors_and_hierarchy."""

    logits: tf.Tensor
    z1: tf.Tensor
    z2: tf.Tensor
    q1: Gaussian
    p1: Gaussian
    q2: Gaussian


def precision_weighted(a: Gaussian, b: Gaussian) -> Gaussian:
    """The normalised product of two Gaussian densities: how the ladder VAE merges estimates.

    Precisions add, 1/var = 1/var_a + 1/var_b, and the mean is the precision-weighted mean,
    mu = (mu_a / var_a + mu_b / var_b) * var. Written with log variances (the weight of a is
    sigmoid(log_var_b - log_var_a)), it stays finite for any of them.
    Taught in notebook 13_priors_and_hierarchy.
    """
    weight_a = tf.sigmoid(b.log_var - a.log_var)
    mu = weight_a * a.mu + (1.0 - weight_a) * b.mu
    return Gaussian(mu, a.log_var - tf.nn.softplus(a.log_var - b.log_var))


def gaussian_kl_per_dimension(q: Gaussian, p: Gaussian) -> tf.Tensor:
    """Closed-form KL(q || p) of each dimension of two diagonal Gaussians, shape ``(batch, d)``.

    KL_j = 1/2 * (log var_p - log var_q + (var_q + (mu_q - mu_p)^2) / var_p - 1); with
    p = N(0, I) it is ``collapse.kl_divergence_per_dimension``.
    Taught in notebook 13_priors_and_hierarchy.
    """
    squared_distance = tf.square(q.mu - p.mu)
    ratio = (tf.exp(q.log_var) + squared_distance) * tf.exp(-p.log_var)
    return 0.5 * (p.log_var - q.log_var + ratio - 1.0)


def _checked_latent_dims(latent_dims: Sequence[int]) -> tuple[int, int]:
    if not isinstance(latent_dims, (tuple, list)):
        raise TypeError(
            "latent_dims is the pair (z1, z2) of the bottom and the top layer's sizes, e.g. "
            f"latent_dims=(8, 2); got {type(latent_dims).__name__}."
        )
    if len(latent_dims) != 2:
        raise ValueError(
            "latent_dims is the pair (z1, z2) of the bottom and the top layer's sizes, e.g. "
            f"latent_dims=(8, 2); got {len(latent_dims)} sizes."
        )
    return check_latent_dim(latent_dims[0]), check_latent_dim(latent_dims[1])


class LadderEncoder(Encoder):
    """The bottom-up pass: x -> d1 -> the estimate (mu_hat1, log_var_hat1) of z1, as an
    :class:`Encoder`, and d1 -> d2 -> (mu_hat2, log_var_hat2), q(z2 | x), by a second one
    on d1. ``LadderEncoder((8, 2), 128)(x)`` returns the two estimates, bottom first.
    Taught in notebook 13_priors_and_hierarchy."""

    def __init__(
        self, latent_dims: Sequence[int], intermediate_dim: int | Sequence[int], **kwargs: Any
    ) -> None:
        super().__init__(latent_dims[0], intermediate_dim, **kwargs)
        self.top = Encoder(latent_dims[1], intermediate_dim, name="top")

    def call(self, x: tf.Tensor) -> tuple[Gaussian, Gaussian]:
        d1 = self.features(x)
        return Gaussian(self.mu(d1), self.log_var(d1)), Gaussian(*self.top(d1))


@keras.saving.register_keras_serializable(package="vae_tutorial")
class HierarchicalVAE(VariationalAutoencoder):
    """A two-layer ladder VAE for flat images: ``HierarchicalVAE(latent_dims=(8, 2))``.

    ``latent_dims`` are the sizes of z1 (the bottom layer, which the decoder reads) and z2
    (the top); every MLP has the hidden widths ``intermediate_dim``. ``latent_dim`` is z1's
    size, so ``decode``, ``log_likelihood`` and the plots work on z1 as for a :class:`VAE`.
    Calling the model on a batch returns a :class:`LadderPass`; ``hierarchical_elbo_terms``
    turns it into the ELBO. Taught in notebook 13_priors_and_hierarchy.
    """

    def __init__(
        self,
        latent_dims: Sequence[int] = (2, 2),
        intermediate_dim: int | Sequence[int] = 128,
        input_dim: int = 784,
        seed: int | None = None,
        likelihood: str | dict | Likelihood = "bernoulli",
        **kwargs: Any,
    ) -> None:
        latent_dims = _checked_latent_dims(latent_dims)
        super().__init__(latent_dims[0], seed=seed, likelihood=likelihood, **kwargs)
        self.latent_dims = latent_dims
        self.intermediate_dim = intermediate_dim
        self.input_dim = check_int(input_dim, "input_dim", 1, fix="e.g. 784 for MNIST.")
        self.event_shape = (self.input_dim,)
        self.encoder = LadderEncoder(latent_dims, intermediate_dim, name="bottom_up")
        # top-down: z2 -> p(z1 | z2), and z1 -> p(x | z1)
        self.prior_z1 = Encoder(latent_dims[0], intermediate_dim, name="prior_z1")
        outputs = self.input_dim * self.likelihood.params_per_pixel
        self.decoder = Decoder(latent_dims[0], intermediate_dim, outputs)

    def bottom_up(self, x: tf.Tensor) -> tuple[Gaussian, Gaussian]:
        """Each layer's estimate from x alone: ``(estimate of z1, q(z2 | x))``."""
        return self.encoder(x)

    def top_down(self, estimates: tuple[Gaussian, Gaussian], seed: Seed = None) -> LadderPass:
        """z2 ~ q(z2 | x), then z1 ~ q(z1 | x, z2), the bottom's estimate merged with the
        prior p(z1 | z2); both drawn by reparameterization with ``seed``."""
        estimate_1, q2 = estimates
        z2 = reparameterize(q2.mu, q2.log_var, seed=seed)
        p1 = Gaussian(*self.prior_z1(z2))
        q1 = precision_weighted(estimate_1, p1)
        z1 = reparameterize(q1.mu, q1.log_var, seed=seed)
        return LadderPass(self.decoder(z1), z1, z2, q1, p1, q2)

    def call(self, x: tf.Tensor) -> LadderPass:  # type: ignore[override]
        """One pass down the model for a batch, z2 and z1 drawn with the model's seed."""
        return self.top_down(self.bottom_up(x), seed=self.seed_generator)

    def encode(self, x: TensorLike) -> Gaussian:
        """q(z1 | x, z2)'s ``(mu, log_var)`` with z2 at the mean of q(z2 | x): each image's
        bottom-layer code without noise (what ``reconstruct`` and the plots use)."""
        estimate_1, q2 = self.bottom_up(self.as_batch(x))
        return precision_weighted(estimate_1, Gaussian(*self.prior_z1(q2.mu)))

    def sample(self, n: int) -> tf.Tensor:
        """The likelihood's mean of ``n`` images drawn down the model: z2 ~ N(0, I),
        z1 ~ p(z1 | z2)."""
        n = check_int(n, "n", 1, fix="e.g. sample(64).")
        z2 = keras.random.normal((n, self.latent_dims[1]), seed=self.seed_generator)
        p1 = Gaussian(*self.prior_z1(z2))
        z1 = reparameterize(p1.mu, p1.log_var, seed=self.seed_generator)
        return self.likelihood.mean(self.decode(z1))

    def iwae_bound(self, x: TensorLike, k: int, seed: int | None = None) -> tf.Tensor:
        """:func:`hierarchical_iwae_bound` of this model (what ``vt.iwae_bound`` computes)."""
        return hierarchical_iwae_bound(self, x, k, seed=seed)

    def get_config(self) -> dict:
        config = {k: v for k, v in super().get_config().items() if k != "latent_dim"}
        return {
            **config,
            "latent_dims": list(self.latent_dims),
            "intermediate_dim": self.intermediate_dim,
            "input_dim": self.input_dim,
        }


def _per_dimension_terms(model, x):
    """Per example log p(x | z1) (batch,), and the KLs of z1 and z2 per dimension."""
    x = model.as_batch(x)
    ladder = model(x)
    log_px_z1 = model.likelihood.log_prob(x, ladder.logits)
    kl_1 = gaussian_kl_per_dimension(ladder.q1, ladder.p1)
    return log_px_z1, kl_1, kl_divergence_per_dimension(*ladder.q2)


def hierarchical_elbo_terms(
    model: HierarchicalVAE, x: TensorLike
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per example ``(log p(x | z1), kl_1, kl_2)``, each of shape ``(batch,)``, in nats.

    kl_1 = KL(q(z1 | x, z2) || p(z1 | z2)) at one z2 ~ q(z2 | x), kl_2 = KL(q(z2 | x) ||
    N(0, I)), both closed form; the ELBO is log p(x | z1) - kl_1 - kl_2.
    Taught in notebook 13_priors_and_hierarchy.
    """
    log_px_z1, kl_1, kl_2 = _per_dimension_terms(model, x)
    return log_px_z1, tf.reduce_sum(kl_1, axis=-1), tf.reduce_sum(kl_2, axis=-1)


def hierarchical_step_terms(
    model: HierarchicalVAE, optimizer: keras.optimizers.Optimizer, x: Batch, beta: TensorLike = 1.0,
    *, free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """One gradient step on the hierarchical negative ELBO; batch means ``(loss,
    reconstruction, kl)``, kl = kl_1 + kl_2.

    ``loss = reconstruction + beta * charged``, where the KL charged is
    sum_j max(free_bits, mean over the batch of KL_j) over every dimension j of both layers
    (free bits as ``collapse.free_bits_kl`` charges them; with 0 it is the KL itself). The
    returned ``kl`` is the true one. Taught in notebook 13_priors_and_hierarchy.
    """
    with tf.GradientTape() as tape:
        log_px_z1, kl_1, kl_2 = _per_dimension_terms(model, x)
        kl_per_dimension = tf.concat([kl_1, kl_2], axis=-1)
        reconstruction = -tf.reduce_mean(log_px_z1)
        kl = tf.reduce_mean(tf.reduce_sum(kl_per_dimension, axis=-1))
        floor = tf.cast(free_bits, kl.dtype)
        charged = tf.reduce_sum(tf.maximum(floor, tf.reduce_mean(kl_per_dimension, axis=0)))
        loss = reconstruction + tf.cast(beta, kl.dtype) * charged
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return loss, reconstruction, kl


def _elbo_sums(model, batches):
    """Sums over a dataset of log p(x | z1), kl_1 and kl_2, and the image count."""
    totals = tf.zeros([4])
    for batch in batches:
        x = tf.reshape(tf.cast(batch, model.compute_dtype), [-1, *model.event_shape])
        terms = hierarchical_elbo_terms(model, x)
        count = tf.cast(tf.shape(x)[0], tf.float32)
        totals += tf.stack([tf.reduce_sum(term) for term in terms] + [count])
    return totals


def evaluate_hierarchical_elbo(
    model: HierarchicalVAE, batches: Iterable[Batch]
) -> dict[str, float]:
    """Average ELBO over a dataset of batches, in nats per image, and its parts.

    Returns ``{"elbo", "log_likelihood", "kl", "images"}`` as ``vt.evaluate_elbo`` does, and
    each layer's rate: ``"kl_1"`` (z1's, given z2) and ``"kl_2"`` (z2's); kl = kl_1 + kl_2.
    One z2 and one z1 are sampled per image. Taught in notebook 13_priors_and_hierarchy.
    """
    with graph_errors_as_value_errors():
        log_px_z1, kl_1, kl_2, count = compiled_for(model, _elbo_sums)(batches).numpy().tolist()
    if count == 0:
        raise ValueError("the dataset of batches is empty; there is nothing to evaluate.")
    return {
        "elbo": (log_px_z1 - kl_1 - kl_2) / count,
        "log_likelihood": log_px_z1 / count,
        "kl": (kl_1 + kl_2) / count,
        "images": int(count),
        "kl_1": kl_1 / count,
        "kl_2": kl_2 / count,
    }


def _log_weights(model, x, estimates, n_samples, seed):
    """log p(x, z1, z2) - log q(z1, z2 | x) for ``n_samples`` draws per image,
    shape (n_samples, batch)."""
    repeated = tf.nest.map_structure(lambda t: tf.tile(t, [n_samples, 1]), estimates)
    ladder = model.top_down(repeated, seed=seed)
    log_joint = (
        model.likelihood.log_prob(tf.tile(x, [n_samples, 1]), ladder.logits)
        + gaussian_log_density(ladder.z1, *ladder.p1)
        + gaussian_log_density(ladder.z2, 0.0, 0.0)
    )
    log_q = gaussian_log_density(ladder.z1, *ladder.q1) + gaussian_log_density(
        ladder.z2, *ladder.q2
    )
    return tf.reshape(log_joint - log_q, [n_samples, -1])


def hierarchical_iwae_bound(
    model: HierarchicalVAE, x: TensorLike, k: int, seed: int | None = None
) -> tf.Tensor:
    """The importance-weighted bound L_k on log p(x) of a hierarchical VAE, per example.

    L_k = E[ log (1/k) sum_s p(x, z1_s, z2_s) / q(z1_s, z2_s | x) ], (z1_s, z2_s) drawn down
    the model: z2_s ~ q(z2 | x), z1_s ~ q(z1 | x, z2_s). L_1 is the ELBO; L_k rises with k
    toward log p(x), so held-out L_k compares with a one-layer VAE's ``vt.iwae_bound``.
    ``seed``: an int for reproducible draws; None draws with the model's seed generator.
    Taught in notebook 13_priors_and_hierarchy.
    """
    k = check_int(k, "k", 1, fix="k is the number of importance samples, e.g. 5000.")
    seed_generator = model.seed_generator if seed is None else keras.random.SeedGenerator(seed)
    with graph_errors_as_value_errors():
        x = model.as_batch(x)
        estimates = model.bottom_up(x)
        chunk = max(1, min(k, _FLOATS_PER_CHUNK // max(1, int(np.prod(x.shape)))))
        log_weights = tf.concat(
            [
                _log_weights(model, x, estimates, min(chunk, k - start), seed_generator)
                for start in range(0, k, chunk)
            ],
            axis=0,
        )
        return tf.reduce_logsumexp(log_weights, axis=0) - math.log(k)
