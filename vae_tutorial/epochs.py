"""One epoch of training, the loop the series teaches: what fit runs between its records.

An epochs runner trains one epoch (``run``), scores held-out images and keeps checkpoints.
:class:`PlainEpochs` is the loop written out, ``for x in make_batches(...):
train_step_terms(model, optimizer, x, beta)``; ``vae_tutorial.fast.FastEpochs`` (fit's
default) and ``vae_tutorial.distributed`` run the same steps faster or under a strategy.
Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import (
    held_out_batches,
    join_batch,
    make_batches,
    num_batches,
    split_batch,
)
from vae_tutorial.checkpoints import RunCheckpoint
from vae_tutorial.compiled import compiled_for
from vae_tutorial.objectives import elbo_evaluator_for, step_terms_for
from vae_tutorial.training_config import TrainingConfig


@dataclass
class EpochResult:
    """Per-image means of one epoch and where it stopped on a NaN/Inf loss (1-based step).

    Taught in notebook 05_training_on_mnist.
    """

    train_loss: float
    reconstruction: float
    kl: float
    images: int
    steps: int
    steps_per_epoch: int
    non_finite_step: int | None = None

    @classmethod
    def of_sums(
        cls, sums: np.ndarray, images: int, steps: int, steps_per_epoch: int
    ) -> EpochResult:
        """The epoch so far from per-image sums of [loss, reconstruction, kl]."""
        train_loss, reconstruction, kl = sums / max(images, 1)
        return cls(train_loss, reconstruction, kl, images, steps, steps_per_epoch)


Progress = Callable[[int, EpochResult], None]


class EpochsRunner(Protocol):
    """What fit runs its epochs with: it trains, scores held-out images and keeps checkpoints
    (``writes_files`` is False on a cluster's workers other than the chief)."""

    steps_per_epoch: int
    writes_files: bool

    def run(self, epoch: int, beta: float, progress: Progress | None = None) -> EpochResult:
        """Train 1-based ``epoch`` with KL weight ``beta``; ``progress(steps_done, result)``
        while it runs. Stops at the first NaN/Inf loss (``result.non_finite_step``)."""
        ...

    def held_out_elbo(self, images: np.ndarray, labels: np.ndarray | None = None) -> float:
        """The average ELBO on ``images``, binarized once for all epochs."""
        ...

    def checkpoint(self, directory: str | os.PathLike) -> RunCheckpoint:
        """The run's checkpoints in ``directory``."""
        ...


class PlainEpochs:
    """fit's epochs as the series writes them: one compiled GradientTape step per batch.

    ``images``: uint8 (N, 28, 28); ``config``: the run's :class:`TrainingConfig` (batches as
    :func:`make_batches` makes them for its ``seed`` and the epoch, ``free_bits`` as
    :func:`vae_tutorial.losses.negative_elbo_terms` takes it); ``labels``: a conditional
    model's classes (N,) or None. Taught in notebook 05_training_on_mnist.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        images: np.ndarray,
        config: TrainingConfig,
        labels: np.ndarray | None = None,
    ) -> None:
        self.model, self.optimizer, self.images, self.labels = model, optimizer, images, labels
        self.config = config
        self.steps_per_epoch = num_batches(len(images), config.batch_size)
        self.writes_files = True
        self._step_terms = step_terms_for(model, config)
        self._step = compiled_for(model, self._step_terms)

    def run(self, epoch: int, beta: float, progress: Progress | None = None) -> EpochResult:
        """Train 1-based ``epoch``; stop at the first NaN/Inf loss."""
        config = self.config
        batches = make_batches(
            self.images, batch_size=config.batch_size, binarize=config.binarize,
            seed=config.seed, epoch=epoch - 1, labels=self.labels,
        )  # fmt: skip
        sums, images = np.zeros(3), 0
        beta = tf.constant(beta, tf.float32)
        for step, batch in enumerate(batches, start=1):
            x, labels = split_batch(batch)  # labels: a conditional model's, else None
            x = tf.reshape(x, [-1, *self.model.event_shape])
            terms = self._step(
                self.optimizer, join_batch(x, labels), beta, free_bits=config.free_bits
            )
            size = int(x.shape[0])
            sums += tf.stack(terms).numpy() * size  # one read from the device per step
            images += size
            result = EpochResult.of_sums(sums, images, step, self.steps_per_epoch)
            if not np.isfinite(sums).all():
                result.non_finite_step = step
                return result
            if progress is not None:
                progress(step, result)
        return result

    def held_out_elbo(self, images: np.ndarray, labels: np.ndarray | None = None) -> float:
        """The average ELBO on ``images`` in batches of at least 256 (the held-out epoch's
        binarization: the same for every epoch)."""
        config = self.config
        batches = held_out_batches(
            images, batch_size=max(config.batch_size, 256), binarize=config.binarize,
            seed=config.seed, labels=labels,
        )  # fmt: skip
        return float(elbo_evaluator_for(self.model)(self.model, batches)["elbo"])

    def checkpoint(self, directory: str | os.PathLike) -> RunCheckpoint:
        """A :class:`RunCheckpoint` of the model and the optimizer in ``directory``."""
        return RunCheckpoint(directory, self.model, self.optimizer)
