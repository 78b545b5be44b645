"""Which epochs runner trains a fit: the plain loop, the fast one, or one under a strategy.

``fit`` asks :func:`epochs_runner` for an ``epochs.EpochsRunner`` and never looks inside it:
``epochs.PlainEpochs`` is the loop notebook 05 writes, ``fast.FastEpochs`` (the default) the
same steps made fast on CPU, ``distributed.DistributedEpochs`` the same step on every replica
of a ``tf.distribute`` strategy (notebook 11). Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.distributed import distributed_epochs
from vae_tutorial.epochs import EpochsRunner, PlainEpochs
from vae_tutorial.fast import FastEpochs
from vae_tutorial.step import prepare_for_training
from vae_tutorial.training_config import TrainingConfig


def epochs_runner(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None,
    images: np.ndarray,
    config: TrainingConfig,
    labels: np.ndarray | None = None,
    *,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool | None = None,
    fast: bool = True,
) -> tuple[keras.optimizers.Optimizer, EpochsRunner]:
    """The optimizer (default Adam at ``config.learning_rate``, built with the model) and the
    runner of fit's epochs; ``jit_compile`` None: XLA for the flat MLP on one device."""
    if strategy is not None:
        if jit_compile:
            raise ValueError("jit_compile=True compiles fit's loop without a strategy only.")
        return distributed_epochs(strategy, model, optimizer, images, config, labels)
    if jit_compile is None:
        jit_compile = len(model.event_shape) == 1 and fast
    optimizer = optimizer or keras.optimizers.Adam(config.learning_rate)
    prepare_for_training(model, optimizer, tf.zeros([1, *model.event_shape]))
    if fast:
        return optimizer, FastEpochs(
            model, optimizer, images, config, labels, jit_compile=jit_compile
        )
    if jit_compile:
        raise ValueError("jit_compile=True compiles the fast runner only; use fast=True.")
    return optimizer, PlainEpochs(model, optimizer, images, config, labels)
