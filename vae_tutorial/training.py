"""fit(): the training loop, epoch by epoch, on top of the GradientTape step of ``step``.

An epochs runner trains each epoch, scores the held-out images and keeps the checkpoints:
``epochs.PlainEpochs`` is the loop notebook 05 writes, ``for x in make_batches(...):
train_step_terms(model, optimizer, x, beta)``; ``runners.epochs_runner`` picks it, the fast
one (the default: the same steps, faster; optional reading) or the one of a ``tf.distribute``
strategy. ``vt.training.train_step_terms`` is the step it runs (imported here for the
notebooks). Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from vae_tutorial import runners
from vae_tutorial.epochs import EpochResult
from vae_tutorial.reporting import EpochProgress, tensorboard_writer, write_summaries
from vae_tutorial.step import prepare_for_training, train_step, train_step_terms  # noqa: F401
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.types_ import Array
from vae_tutorial.validation import check_binarize_for_likelihood, check_image_model


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; :func:`fit` stopped without saving that state.

    Attributes: ``epoch`` (1-based), ``step`` (1-based, within the epoch), ``checkpoint`` (path
    of the last good checkpoint, restored into the model, or None) and ``history`` (the
    finished epochs). Taught in notebook 05_training_on_mnist.
    """

    def __init__(
        self, message: str, *, epoch: int, step: int, checkpoint: str | None, history: list[dict]
    ) -> None:
        super().__init__(message)
        self.epoch, self.step, self.checkpoint, self.history = epoch, step, checkpoint, history


def kl_warmup_beta(epoch: int, beta: float = 1.0, kl_warmup_epochs: int = 0) -> float:
    """The KL weight of 1-based ``epoch``: ``beta * min(1, epoch / kl_warmup_epochs)``.

    With ``kl_warmup_epochs=0`` it is ``beta`` from the start. Taught in notebook
    05_training_on_mnist.
    """
    if kl_warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, epoch / kl_warmup_epochs)


def fit(
    model: keras.Model,
    train: Array | tuple[Array, Array],
    test: Array | tuple[Array, Array] | None = None,
    config: TrainingConfig | None = None,
    *,
    optimizer: keras.optimizers.Optimizer | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: bool = True,
    jit_compile: bool | None = None,
    fast: bool = True,
    on_epoch_end: Callable[[list[dict]], object] | None = None,
    strategy: tf.distribute.Strategy | None = None,
    **settings: object,  # fit(..., epochs=3) is refused with the TrainingConfig to write
) -> list[dict]:
    """Train ``model`` on uint8 images (N, 28, 28) for ``config.epochs`` epochs; return the history.

    Args:
        model: a ``VAE``, ``ConvVAE`` or ``ConditionalVAE`` for 28x28 images.
        train, test: uint8 images (N, 28, 28), e.g. ``data.train_images``; for a
            ``ConditionalVAE`` the pair ``(images, labels)`` (``model.split_data`` checks it;
            notebook 10_conditional_vae). With ``test`` every epoch reports the held-out ELBO.
        config: the run's :class:`TrainingConfig` (None: the defaults). Epoch e trains on
            ``make_batches(..., seed=config.seed, epoch=e - 1)``, with KL weight
            :func:`kl_warmup_beta`. fit seeds Python, NumPy and TensorFlow with
            ``config.seed`` first; a model's initial weights are fixed when it is built.
        optimizer: default ``keras.optimizers.Adam(config.learning_rate)``.
        checkpoint_dir: save a checkpoint (model, optimizer, RNG state, history) after every
            epoch; a later call resumes from it.
        tensorboard_dir: write scalars and reconstructions for TensorBoard.
        progress: print a progress bar and one line per epoch.
        jit_compile: compile with XLA (None: for flat MLP models, not convolutional ones).
        fast: train with ``fast.FastEpochs`` (the same steps on the same batches, many per
            call); False: with ``epochs.PlainEpochs``, the loop of notebook 05.
        on_epoch_end: called with the history after every finished (and saved) epoch.
        strategy: a ``tf.distribute.Strategy`` to train under (``distributed``; notebook
            11_distributed_training). None: no strategy.

    Returns one dict per epoch: epoch, train_loss, reconstruction, kl, beta, test_elbo,
    seconds, images_per_second. A NaN/Inf loss raises :class:`NonFiniteLossError`.
    Taught in notebook 05_training_on_mnist.
    """
    config = _checked_config(config, settings)
    check_image_model(model)
    check_binarize_for_likelihood(config.binarize, model.likelihood)
    train_images, train_labels = model.split_data(train, "train")
    test_images, test_labels = (None, None) if test is None else model.split_data(test, "test")
    keras.utils.set_random_seed(config.seed)
    optimizer, epochs_runner = runners.epochs_runner(
        model, optimizer, train_images, config, train_labels,
        strategy=strategy, jit_compile=jit_compile, fast=fast,
    )  # fmt: skip
    if not epochs_runner.writes_files:
        tensorboard_dir = None  # on a cluster only the chief writes
    checkpoints = None
    history = []
    if checkpoint_dir is not None:
        checkpoints = epochs_runner.checkpoint(checkpoint_dir)
        history = checkpoints.resume(report=print if progress else lambda *_: None)
        if history and progress:
            print(f"Resumed from {checkpoints.latest}: {len(history)} epoch(s) done.")

    with tensorboard_writer(tensorboard_dir) as writer:
        for epoch in range(len(history) + 1, config.epochs + 1):
            epoch_beta = kl_warmup_beta(epoch, config.beta, config.kl_warmup_epochs)
            # forward, backward, update: every batch of the epoch
            bar = EpochProgress(epoch, config, epoch_beta, epochs_runner) if progress else None
            started = time.perf_counter()
            result = epochs_runner.run(epoch, epoch_beta, bar)
            seconds = time.perf_counter() - started
            # evaluate on held-out data
            test_elbo = None
            if test_images is not None and result.non_finite_step is None:
                test_elbo = epochs_runner.held_out_elbo(test_images, test_labels)
            # stop on NaN/Inf, with the last good checkpoint back in the model
            _stop_if_non_finite(result, test_elbo, model, optimizer, epoch, checkpoints, history)
            # record, report, write summaries and checkpoints
            history.append(_record(epoch, epoch_beta, result, test_elbo, seconds))
            if bar is not None:
                bar.finish(history[-1])
            if writer is not None:
                sample = (
                    (train_images, train_labels)
                    if test_images is None
                    else (test_images, test_labels)
                )
                write_summaries(writer, model, history[-1], sample, config)
            if checkpoints is not None:
                checkpoints.save(history)
            if on_epoch_end is not None:
                on_epoch_end(list(history))
    return history


def _checked_config(config, settings) -> TrainingConfig:
    """fit's settings: one TrainingConfig, not loose keywords."""
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainingConfig)})
    if unknown:
        raise TypeError(f"fit() got an unexpected keyword argument {unknown[0]!r}.")
    if settings:
        given = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise TypeError(
            f"fit takes the run's settings in one TrainingConfig: "
            f"fit(model, train, test, vt.TrainingConfig({given}))."
        )
    if config is None:
        return TrainingConfig()
    if not isinstance(config, TrainingConfig):
        raise TypeError(
            f"config must be a TrainingConfig, got {type(config).__name__}: e.g. "
            "vt.TrainingConfig(epochs=10, batch_size=128)."
        )
    return config


def _record(epoch, beta, result: EpochResult, test_elbo, seconds) -> dict:
    return {
        "epoch": epoch,
        "train_loss": float(result.train_loss),
        "reconstruction": float(result.reconstruction),
        "kl": float(result.kl),
        "beta": beta,
        "test_elbo": test_elbo,
        "seconds": seconds,
        "images_per_second": result.images / seconds,
    }


def _stop_if_non_finite(result, test_elbo, model, optimizer, epoch, checkpoints, history):
    """The one place that stops on NaN/Inf: restore the last good checkpoint, then raise."""
    step = result.non_finite_step
    if step is None and math.isfinite(test_elbo if test_elbo is not None else 0.0):
        if all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in model.trainable_variables):
            return
        step = result.steps
    path = checkpoints.restore_last_good() if checkpoints is not None else None
    if path:
        kept = (
            f"The last good checkpoint, {path} (epoch {len(history)}), is kept and has been "
            "restored into the model."
        )
    elif checkpoints is not None:
        kept = (
            f"No checkpoint was saved yet in {checkpoints.directory} (the first epoch did not "
            "finish), so the model's weights are not usable: build a new model."
        )
    else:
        kept = (
            "No checkpoint was saved (pass checkpoint_dir= to keep one after every epoch), "
            "so the model's weights are not usable: build a new model."
        )
    lr = float(tf.convert_to_tensor(optimizer.learning_rate))
    raise NonFiniteLossError(
        f"the training loss became NaN or Inf at epoch {epoch}, step {step} of "
        f"{result.steps_per_epoch}; "
        f"training stopped and this state was not saved. {kept} "
        f"Try a lower learning rate (e.g. {lr / 10:g} instead of {lr:g}), or a smaller beta.",
        epoch=epoch,
        step=step,
        checkpoint=path,
        history=list(history),
    )
