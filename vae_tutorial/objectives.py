"""Which GradientTape step and which held-out ELBO fit uses, given the model and the run.

By default the ELBO step of notebook 04 (``step.train_step_terms``) and the held-out ELBO of
notebook 05 (``evaluation.evaluate_elbo``). A later lesson that trains another objective, or a
model whose ELBO is not the closed-form one, adds its case here, so every runner (the plain
loop, the fast one, checkpoints and resume) trains it the same way.
Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import keras
import tensorflow as tf

from vae_tutorial.conditional import ConditionalVAE
from vae_tutorial.evaluation import evaluate_elbo
from vae_tutorial.hierarchical import (
    HierarchicalVAE,
    evaluate_hierarchical_elbo,
    hierarchical_step_terms,
)
from vae_tutorial.iwae import iwae_step_terms
from vae_tutorial.prior_elbo import check_no_free_bits, evaluate_prior_elbo, prior_elbo_step_terms
from vae_tutorial.priors import has_standard_normal_prior
from vae_tutorial.step import train_step_terms
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import Batch
from vae_tutorial.vqvae import VQVAE, check_vq_training, evaluate_vq_elbo, vq_step_terms

# step(model, optimizer, x, beta, *, free_bits) -> batch means (loss, reconstruction, kl)
StepTerms = Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]
# evaluator(model, batches) -> {"elbo", "log_likelihood", "kl", "images"}
ElboEvaluator = Callable[[keras.Model, Iterable[Batch]], dict]


def step_terms_for(model: keras.Model, config: TrainingConfig) -> StepTerms:
    """The step fit trains ``model`` with under ``config``: ``objective="iwae"`` trains the
    importance-weighted bound with ``config.k`` samples (notebook 12)."""
    if isinstance(model, VQVAE):  # notebook 14_vq_vae: no KL, a codebook
        check_vq_training(config)
        return vq_step_terms
    if isinstance(model, HierarchicalVAE):  # two layers, two KLs (notebook 13)
        if config.objective == "iwae":
            raise ValueError(
                "objective='iwae' trains a VAE or ConvVAE; train the HierarchicalVAE with "
                "objective='elbo' (hierarchical_iwae_bound still scores it)."
            )
        return hierarchical_step_terms
    if config.objective == "iwae":
        if isinstance(model, ConditionalVAE):
            raise ValueError(
                "objective='iwae' trains a VAE or ConvVAE; train the ConditionalVAE with "
                "objective='elbo' (its iwae_bound still scores log p(x | y))."
            )
        return _iwae_step(config.k, config.estimator)
    if not has_standard_normal_prior(model):  # a learned prior: a Monte Carlo KL (notebook 13)
        check_no_free_bits(config.free_bits)
        return prior_elbo_step_terms
    return train_step_terms


@functools.cache
def _iwae_step(k: int, estimator: str) -> StepTerms:
    """One callable per (k, estimator): the compiled steps are cached per function."""
    return functools.partial(iwae_step_terms, k=k, estimator=estimator)


def elbo_evaluator_for(model: keras.Model) -> ElboEvaluator:
    """How fit scores ``model``'s held-out ELBO after every epoch."""
    if isinstance(model, VQVAE):
        return evaluate_vq_elbo
    if isinstance(model, HierarchicalVAE):
        return evaluate_hierarchical_elbo
    if not has_standard_normal_prior(model):  # a learned prior: a Monte Carlo KL (notebook 13)
        return evaluate_prior_elbo
    return evaluate_elbo


def is_plain_elbo(model: keras.Model, config: TrainingConfig) -> bool:
    """True when fit trains ``model`` on the closed-form ELBO of notebooks 02-05."""
    return (
        step_terms_for(model, config) is train_step_terms
        and elbo_evaluator_for(model) is evaluate_elbo
    )
