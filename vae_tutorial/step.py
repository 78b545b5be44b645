"""The GradientTape training step: the heart of the series.

``train_step_terms`` is the step as a plain function (forward pass, negative ELBO, gradients,
update), which runs inside a larger ``tf.function`` such as a whole epoch; ``train_step`` is
the original article's compiled step, ``loss = train_step(model, optimizer, x)``, that works
for any number of models in one process. Taught in notebook 04_gradienttape_training_step.
"""

from __future__ import annotations

import weakref

import keras
import tensorflow as tf

from vae_tutorial.batching import join_batch, split_batch
from vae_tutorial.compiled import compiled_for
from vae_tutorial.losses import negative_elbo_terms
from vae_tutorial.types_ import Batch, TensorLike
from vae_tutorial.validation import check_finite_number, check_pixels, graph_errors_as_value_errors

# Which model each optimizer trains: an optimizer's slots belong to one set of variables.
_OPTIMIZER_OWNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_for_training(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Batch
) -> None:
    """Create the model's and optimizer's variables eagerly, before any ``tf.function``.

    Keras 3 creates optimizer variables lazily, on the first ``apply_gradients``. When that
    first call happens inside a ``tf.function`` traced earlier for another model, TensorFlow
    fails with "'SymbolicTensor' object has no attribute 'handle'". Building both here, in
    eager mode, means a compiled step only ever *uses* variables.
    Taught in notebook 04_gradienttape_training_step.
    """
    owner = _OPTIMIZER_OWNERS.get(optimizer)
    if owner is not None and owner() is not model:
        raise ValueError(
            "this optimizer already trains another model; its slot variables belong to that "
            "model. Create one optimizer per model, e.g. keras.optimizers.Adam(1e-3)."
        )
    if not model.built:
        model(x)
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    _OPTIMIZER_OWNERS[optimizer] = weakref.ref(model)


def train_step_terms(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Batch, beta: TensorLike = 1.0,
    *, free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """One gradient step on the negative ELBO; returns ``(loss, reconstruction, kl)``.

    A plain function, so it can run inside a larger ``tf.function`` (a whole epoch). ``x``: a
    batch of values in [0, 1], as ``make_batches`` makes them (:func:`train_step` checks its
    batch); for a conditional model the pair ``(images, labels)``. ``free_bits``: as
    ``negative_elbo_terms`` takes it. Taught in notebook 04_gradienttape_training_step.
    """
    images, labels = split_batch(x)
    with tf.GradientTape() as tape:
        logits, mu, log_var = model(x, training=True)
        loss, reconstruction, kl = negative_elbo_terms(
            images, logits, mu, log_var, beta, likelihood=model.likelihood, free_bits=free_bits
        )
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return loss, reconstruction, kl


def _checked_train_step(model, optimizer, x, beta):
    """:func:`train_step_terms` on a batch checked first (finite, in [0, 1])."""
    images, labels = split_batch(x)
    images = check_pixels(images)
    with tf.control_dependencies([images]):  # every update, even the step counter, waits
        return train_step_terms(model, optimizer, join_batch(images, labels), beta)


def train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Batch, beta: float = 1.0
) -> tf.Tensor:
    """One compiled GradientTape step, called exactly as the original article calls it.

    ``loss = train_step(model, optimizer, x)`` returns the batch's negative ELBO (a scalar
    tensor, nats per image). The batch is checked first, so a bad one never reaches the
    variables. It works for any number of models and optimizers in one process: each new
    pair is traced once, after its variables exist.
    Taught in notebook 04_gradienttape_training_step.
    """
    check_finite_number(beta, "beta")
    x = model.as_batch(x)
    with graph_errors_as_value_errors():
        prepare_for_training(model, optimizer, x)
        step = compiled_for(model, _checked_train_step)
        return step(optimizer, x, tf.constant(beta, tf.float32))[0]
