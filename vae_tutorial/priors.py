"""The prior p(z) a VAE carries: the standard normal, a learned mixture, or the VampPrior.

Every prior is a Keras layer with ``log_prob(z)`` (per example, summed over the latent
dimensions; any leading axes) and ``sample(n, seed=None)``. A model takes one by name,
``VAE(..., prior="mog")``; "normal" is N(0, I), the prior of notebooks 02-12, whose KL has a
closed form. Against a learned prior the KL has none: :func:`monte_carlo_kl` estimates it from
the z the step samples anyway. Taught in notebook 13_priors_and_hierarchy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from vae_tutorial.losses import gaussian_log_density
from vae_tutorial.types_ import Seed, TensorLike
from vae_tutorial.validation import check_choice, check_int

NUM_COMPONENTS = 10  # MixturePrior's default: one per digit class
NUM_PSEUDO_INPUTS = 100  # VampPrior's default
# Each prior's options and their defaults (a config names only those set otherwise)
PRIOR_OPTIONS: dict[str, dict[str, int]] = {
    "normal": {},
    "mog": {"num_components": NUM_COMPONENTS},
    "vamp": {"num_pseudo_inputs": NUM_PSEUDO_INPUTS},
}


class StandardNormalPrior(keras.layers.Layer):
    """p(z) = N(0, I): log p(z) = -1/2 sum_j (log 2 pi + z_j^2). No weights.

    Taught in notebook 13_priors_and_hierarchy.
    """

    spec_name = "normal"
    description = "the prior z ~ N(0, I)"  # how a figure names it

    def __init__(self, latent_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latent_dim = check_int(latent_dim, "latent_dim", 1, fix="e.g. 2.")
        self.built = True

    def log_prob(self, z: TensorLike) -> tf.Tensor:
        """log N(z; 0, I) summed over the last axis."""
        return gaussian_log_density(z, 0.0, 0.0)

    def sample(self, n: int, seed: Seed = None) -> tf.Tensor:
        """``n`` draws z ~ N(0, I), shape ``(n, latent_dim)``."""
        return keras.random.normal((n, self.latent_dim), seed=seed)

    def get_config(self) -> str | dict:
        """What rebuilds this prior with :func:`get_prior`: its name."""
        return self.spec_name


class GaussianMixturePrior(keras.layers.Layer):
    """What the learned priors share: p(z) = sum_k w_k N(z; m_k, diag(exp(v_k))).

    A subclass gives ``components() -> (log_weights (K,), means (K, D), log_vars (K, D))``.
    log p(z) = logsumexp_k [log w_k + log N(z; m_k, diag(exp(v_k)))].
    Taught in notebook 13_priors_and_hierarchy.
    """

    spec_name: str

    def components(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(log_weights (K,), means (K, D), log_vars (K, D))`` of the mixture."""
        raise NotImplementedError

    def log_prob(self, z: TensorLike) -> tf.Tensor:
        """log p(z) over the last axis of ``z``: shape ``z.shape[:-1]``."""
        log_weights, means, log_vars = self.components()
        z = tf.cast(z, means.dtype)[..., None, :]  # against every component: (..., K, D)
        per_component = gaussian_log_density(z, means, log_vars)  # (..., K)
        return tf.reduce_logsumexp(log_weights + per_component, axis=-1)

    def sample(self, n: int, seed: Seed = None) -> tf.Tensor:
        """``n`` draws: a component k ~ w, then z ~ N(m_k, diag(exp(v_k))); ``(n, D)``."""
        n = check_int(n, "n", 1, fix="e.g. sample(16).")
        if not isinstance(seed, keras.random.SeedGenerator):  # two draws: one stream
            seed = keras.random.SeedGenerator(seed)
        log_weights, means, log_vars = self.components()
        k = keras.random.categorical(log_weights[None], n, seed=seed)[0]
        eps = keras.random.normal((n, means.shape[-1]), dtype=means.dtype, seed=seed)
        return tf.gather(means, k) + tf.exp(0.5 * tf.gather(log_vars, k)) * eps

    def get_config(self) -> str | dict:
        """What rebuilds this prior with :func:`get_prior`: its name and settings."""
        return check_prior_config({"name": self.spec_name, **self.settings()})

    def settings(self) -> dict:
        """The options it was built with, e.g. ``{"num_components": 10}``."""
        raise NotImplementedError


class MixturePrior(GaussianMixturePrior):
    """A learned mixture of ``num_components`` diagonal Gaussians in z-space.

    Trainable: the means (initialised N(0, 1), so the components start apart), the
    log-variances (0) and the logits of the weights (0: equal weights), w = softmax(logits).
    Taught in notebook 13_priors_and_hierarchy.
    """

    spec_name = "mog"
    description = "the learned prior (a mixture of Gaussians)"

    def __init__(
        self, latent_dim: int, num_components: int = NUM_COMPONENTS, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim = check_int(latent_dim, "latent_dim", 1, fix="e.g. 2.")
        self.num_components = check_int(
            num_components, "num_components", 1, fix="e.g. 10, one per digit class."
        )
        shape = (self.num_components, self.latent_dim)
        normal = keras.initializers.RandomNormal(stddev=1.0)
        self.means = self.add_weight(shape=shape, initializer=normal, name="means")
        self.log_vars = self.add_weight(shape=shape, initializer="zeros", name="log_vars")
        self.logits = self.add_weight(
            shape=(self.num_components,), initializer="zeros", name="logits"
        )
        self.built = True

    def components(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return tf.nn.log_softmax(self.logits), self.means, self.log_vars

    def settings(self) -> dict:
        return {"num_components": self.num_components}


class VampPrior(GaussianMixturePrior):
    """The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k).

    The K learned pseudo-inputs u_k are images of ``event_shape`` passed through the model's
    own ``encoder`` (which returns ``(mu, log_var)``): the prior is the posterior averaged
    over K images the model learns. u = sigmoid(w) keeps them in (0, 1); w starts N(0, 1),
    random grey images. Taught in notebook 13_priors_and_hierarchy.
    """

    spec_name = "vamp"
    description = "the learned VampPrior"

    def __init__(
        self,
        encoder: keras.Model,
        event_shape: Sequence[int],
        num_pseudo_inputs: int = NUM_PSEUDO_INPUTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(encoder):
            raise TypeError(
                f"encoder must be the model's encoder (x -> (mu, log_var)), got "
                f"{type(encoder).__name__}: e.g. VampPrior(model.encoder, model.event_shape)."
            )
        self.encoder = encoder
        self.num_pseudo_inputs = check_int(
            num_pseudo_inputs, "num_pseudo_inputs", 1, fix="e.g. 100."
        )
        shape = (self.num_pseudo_inputs, *event_shape)
        normal = keras.initializers.RandomNormal(stddev=1.0)
        self.pseudo_logits = self.add_weight(shape=shape, initializer=normal, name="pseudo")
        self.built = True

    def pseudo_inputs(self) -> tf.Tensor:
        """The pseudo-inputs u_k = sigmoid(w_k), in (0, 1): ``(K, *event_shape)``."""
        return tf.sigmoid(self.pseudo_logits)

    def components(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        means, log_vars = self.encoder(self.pseudo_inputs())
        k = self.num_pseudo_inputs
        return tf.fill([k], tf.cast(-math.log(k), means.dtype)), means, log_vars

    def settings(self) -> dict:
        return {"num_pseudo_inputs": self.num_pseudo_inputs}


Prior = StandardNormalPrior | GaussianMixturePrior
PRIORS: dict[str, type[keras.layers.Layer]] = {
    "normal": StandardNormalPrior,
    "mog": MixturePrior,
    "vamp": VampPrior,
}


def _name_and_options(prior: str | dict) -> tuple[object, dict]:
    if isinstance(prior, dict):
        return prior.get("name"), {k: v for k, v in prior.items() if k != "name"}
    return prior, {}


def check_prior_config(prior: str | dict | Prior) -> str | dict:
    """A prior's name ("normal", "mog", "vamp") or config dict such as ``{"name": "mog",
    "num_components": 20}``, checked; options at their defaults are left out, and a config
    without options is its name. Taught in notebook 13_priors_and_hierarchy.
    """
    if isinstance(prior, (StandardNormalPrior, GaussianMixturePrior)):
        return prior.get_config()
    if not isinstance(prior, (str, dict)):
        raise TypeError(
            f"prior must be a name, a config dict or a prior, got {type(prior).__name__}: "
            'e.g. "normal", "mog" or {"name": "mog", "num_components": 20}.'
        )
    name, options = _name_and_options(prior)
    name = check_choice(name, "prior", tuple(PRIORS))
    unknown = sorted(set(options) - set(PRIOR_OPTIONS[name]))
    if unknown:
        raise TypeError(
            f"prior {name!r} takes no option {', '.join(unknown)}; "
            "mog takes num_components, vamp num_pseudo_inputs."
        )
    options = {k: check_int(v, k, 1, fix="e.g. 10.") for k, v in options.items()}
    options = {k: v for k, v in options.items() if v != PRIOR_OPTIONS[name][k]}
    return {"name": name, **options} if options else name


def get_prior(
    prior: str | dict | Prior = "normal",
    latent_dim: int = 2,
    encoder: keras.Model | None = None,
    event_shape: Sequence[int] | None = None,
) -> Prior:
    """A prior from its name or config dict (:func:`check_prior_config`), or an instance
    (returned as it is). The VampPrior needs the model's ``encoder`` and ``event_shape``.

    Taught in notebook 13_priors_and_hierarchy.
    """
    if isinstance(prior, (StandardNormalPrior, GaussianMixturePrior)):
        return prior
    name, options = _name_and_options(check_prior_config(prior))
    if name == "vamp":
        if encoder is None or event_shape is None:
            raise ValueError(
                "the VampPrior passes pseudo-inputs through the model's encoder: build it with "
                "the model, VAE(..., prior='vamp'), or VampPrior(model.encoder, model.event_shape)."
            )
        return VampPrior(encoder, event_shape, **options)
    return PRIORS[str(name)](latent_dim, **options)


def monte_carlo_kl(z: TensorLike, mu: TensorLike, log_var: TensorLike, prior: Prior) -> tf.Tensor:
    """A one-sample estimate of KL(q(z | x) || p(z)) per example: log q(z | x) - log p(z).

    ``z`` ~ q(z | x) = N(mu, diag(exp(log_var))). Unbiased: its mean over draws of z is the KL,
    for any prior, where the closed form of notebook 02 holds for N(0, I) alone.
    Taught in notebook 13_priors_and_hierarchy.
    """
    z = tf.convert_to_tensor(z)
    return gaussian_log_density(z, mu, log_var) - prior.log_prob(z)


def has_standard_normal_prior(model: keras.Model) -> bool:
    """True when ``model``'s prior is N(0, I) (or it carries none): its KL has a closed form."""
    return isinstance(getattr(model, "prior", None), (StandardNormalPrior, type(None)))


def log_prior(model: keras.Model, z: TensorLike) -> tf.Tensor:
    """log p(z) under ``model``'s prior, over the last axis; N(0, I) for a model without one."""
    if has_standard_normal_prior(model):
        return gaussian_log_density(z, 0.0, 0.0)
    return model.prior.log_prob(z)
