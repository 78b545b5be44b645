"""Which GradientTape step and which held-out ELBO fit uses, given the model and the run.

By default the ELBO step of notebook 04 (``step.train_step_terms``) and the held-out ELBO of
notebook 05 (``evaluation.evaluate_elbo``). A later lesson that trains another objective, or a
model whose ELBO is not the closed-form one, adds its case here, so every runner (the plain
loop, the fast one, checkpoints and resume) trains it the same way.
Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import tensorflow as tf

from vae_tutorial.evaluation import evaluate_elbo
from vae_tutorial.step import train_step_terms
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import Batch
from vae_tutorial.vqvae import VQVAE, check_vq_training, evaluate_vq_elbo, vq_step_terms

# step(model, optimizer, x, beta, *, free_bits) -> batch means (loss, reconstruction, kl)
StepTerms = Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]
# evaluator(model, batches) -> {"elbo", "log_likelihood", "kl", "images"}
ElboEvaluator = Callable[[keras.Model, Iterable[Batch]], dict]


def step_terms_for(model: keras.Model, config: TrainingConfig) -> StepTerms:
    """The step fit trains ``model`` with under ``config``."""
    if isinstance(model, VQVAE):  # notebook 14_vq_vae: no KL, a codebook
        check_vq_training(config)
        return vq_step_terms
    return train_step_terms


def elbo_evaluator_for(model: keras.Model) -> ElboEvaluator:
    """How fit scores ``model``'s held-out ELBO after every epoch."""
    if isinstance(model, VQVAE):
        return evaluate_vq_elbo
    return evaluate_elbo


def is_plain_elbo(model: keras.Model, config: TrainingConfig) -> bool:
    """True when fit trains ``model`` on the closed-form ELBO of notebooks 02-05."""
    return (
        step_terms_for(model, config) is train_step_terms
        and elbo_evaluator_for(model) is evaluate_elbo
    )
