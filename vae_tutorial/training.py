"""fit(): the training loop, epoch by epoch, on top of the GradientTape step of ``step``.

An epochs runner trains each epoch: ``epochs.PlainEpochs`` is the loop notebook 05 writes,
``for x in make_batches(...): train_step_terms(model, optimizer, x, beta)``; the default,
``fast.FastEpochs``, trains the same steps faster (optional reading). ``checkpoints`` saves
and restores runs. Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import held_out_batches
from vae_tutorial.distributed import distributed_epochs, is_chief, run_checkpoint
from vae_tutorial.epochs import EpochResult, PlainEpochs
from vae_tutorial.evaluation import evaluate_elbo
from vae_tutorial.fast import FastEpochs
from vae_tutorial.step import prepare_for_training, train_step, train_step_terms
from vae_tutorial.training_config import TrainingConfig
from vae_tutorial.validation import (
    check_binarize_for_likelihood,
    check_distributable,
    check_image_model,
    check_labels_for_model,
    check_uint8_images,
)

__all__ = [
    "NonFiniteLossError",
    "TrainingConfig",
    "fit",
    "kl_warmup_beta",
    "prepare_for_training",
    "train_step",
    "train_step_terms",
]
_TENSORBOARD_IMAGES = 8


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; :func:`fit` stopped without saving that state.

    Attributes: ``epoch`` (1-based), ``step`` (1-based, within the epoch), ``checkpoint`` (path
    of the last good checkpoint, restored into the model, or None) and ``history`` (the
    finished epochs). Taught in notebook 05_training_on_mnist.
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int,
        step: int,
        checkpoint: str | None,
        history: list[dict],
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
    train_images: np.ndarray,
    test_images: np.ndarray | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: keras.optimizers.Optimizer | None = None,
    learning_rate: float = 1e-3,
    beta: float = 1.0,
    kl_warmup_epochs: int = 0,
    free_bits: float = 0.0,
    binarize: str = "dynamic",
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    tensorboard_dir: str | os.PathLike | None = None,
    progress: bool = True,
    jit_compile: bool | None = None,
    fast: bool = True,
    on_epoch_end: Callable[[list[dict]], object] | None = None,
    train_labels: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> list[dict]:
    """Train ``model`` on uint8 images (N, 28, 28) for ``epochs`` epochs; return the history.

    Args:
        model: a ``VAE``, ``ConvVAE`` or ``ConditionalVAE`` for 28x28 images.
        train_images, test_images: uint8 arrays (N, 28, 28), e.g. ``data.train_images``;
            with ``test_images`` every epoch reports the held-out ELBO.
        epochs, batch_size, learning_rate, beta, kl_warmup_epochs, free_bits, binarize,
            seed: the :class:`TrainingConfig` settings. Epoch e's batches are
            ``make_batches(..., seed=seed, epoch=e - 1)``'s; ``beta`` weights the KL term,
            ramped up over ``kl_warmup_epochs`` (:func:`kl_warmup_beta`); ``free_bits`` > 0
            trains on the free-bits KL (``losses.free_bits_kl``, notebook
            09_beta_and_posterior_collapse) while the history's ``kl`` stays the true KL;
            ``binarize`` must suit the model's likelihood (notebook
            08_likelihoods_for_grey_pixels: "dequantize" for the densities on [0, 1], "none"
            for the discretized logistic). fit seeds Python, NumPy and TensorFlow with
            ``keras.utils.set_random_seed(seed)`` first; the model's initial weights are
            fixed earlier, when its layers are made, so seed before building the model.
        optimizer: default ``keras.optimizers.Adam(learning_rate)``.
        checkpoint_dir: save a checkpoint (model, optimizer, RNG state, history) after every
            epoch; a later call resumes from it.
        tensorboard_dir: write scalars and reconstructions for TensorBoard.
        progress: print a progress bar and one line per epoch.
        jit_compile: compile with XLA (None: for flat MLP models, not convolutional ones).
        fast: train with ``fast.FastEpochs`` (many steps per call, the batch made in the
            graph); False: with ``epochs.PlainEpochs``, the loop of notebook 05, one compiled
            step per batch. The same steps on the same batches, slower.
        on_epoch_end: called with the history after every finished (and saved) epoch.
        train_labels, test_labels: the images' classes (N,), e.g. ``data.train_labels``: a
            ``ConditionalVAE`` needs them (each batch carries its images' labels; notebook
            10_conditional_vae), other models take none.
        strategy: a ``tf.distribute.Strategy`` to train under (see ``distributed``): the
            variables are made in its scope, each replica's loss is its per-example sum over
            the global batch size, the metrics are reduced across replicas; on a multi-worker
            cluster only the chief writes checkpoints and TensorBoard logs. None: no strategy.

    Returns one dict per epoch: epoch, train_loss, reconstruction, kl, beta, test_elbo,
    seconds, images_per_second. A NaN/Inf loss raises :class:`NonFiniteLossError`.
    Taught in notebook 05_training_on_mnist.
    """
    config = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        beta=beta,
        kl_warmup_epochs=kl_warmup_epochs,
        free_bits=free_bits,
        binarize=binarize,
        seed=seed,
    )
    train_images, test_images, train_labels, test_labels = _checked_data(
        model, config, train_images, test_images, train_labels, test_labels
    )
    keras.utils.set_random_seed(config.seed)
    optimizer, epochs_runner = _epochs_runner(
        model, optimizer, train_images, train_labels, config, strategy, jit_compile, fast
    )
    if strategy is not None and not is_chief(strategy):
        tensorboard_dir = None  # on a cluster only the chief writes
    checkpoints = None
    history = []
    if checkpoint_dir is not None:
        checkpoints = run_checkpoint(strategy, checkpoint_dir, model, optimizer)
        history = checkpoints.resume(report=print if progress else _silent)
        if history and progress:
            print(f"Resumed from {checkpoints.latest}: {len(history)} epoch(s) done.")

    with _tensorboard(tensorboard_dir) as writer:
        for epoch in range(len(history) + 1, config.epochs + 1):
            epoch_beta = kl_warmup_beta(epoch, config.beta, config.kl_warmup_epochs)
            # forward, backward, update: every batch of the epoch
            bar = _EpochProgress(epoch, config, epoch_beta, epochs_runner) if progress else None
            started = time.perf_counter()
            result = epochs_runner.run(epoch, epoch_beta, bar)
            seconds = time.perf_counter() - started
            # evaluate on held-out data
            test_elbo = None
            if test_images is not None and result.non_finite_step is None:
                test_elbo = _held_out_elbo(
                    model, test_images, config, test_labels, epochs_runner, strategy
                )
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
                _write_summaries(writer, model, history[-1], sample, config)
            if checkpoints is not None:
                checkpoints.save(history)
            if on_epoch_end is not None:
                on_epoch_end(list(history))
    return history


def _checked_data(model, config, train_images, test_images, train_labels, test_labels):
    """fit's data checked once: uint8 images, the labels the model needs, a suitable binarize."""
    check_image_model(model)
    check_binarize_for_likelihood(config.binarize, model.likelihood)
    train_images = check_uint8_images(train_images, "train_images")
    train_labels = check_labels_for_model(model, train_labels, len(train_images), "train_labels")
    if test_images is not None:
        test_images = check_uint8_images(test_images, "test_images")
        test_labels = check_labels_for_model(model, test_labels, len(test_images), "test_labels")
    elif test_labels is not None:
        raise ValueError("test_labels were given without test_images; pass both or neither.")
    return train_images, test_images, train_labels, test_labels


def _epochs_runner(
    model, optimizer, train_images, train_labels, config, strategy, jit_compile, fast
):
    """The optimizer and what runs the epochs: ``FastEpochs`` (or ``PlainEpochs``) on one
    device, the ``distributed`` module's runner under a strategy (variables in its scope)."""
    if jit_compile is None:
        jit_compile = len(model.event_shape) == 1 and strategy is None and fast
    batches = {"batch_size": config.batch_size, "binarize": config.binarize, "seed": config.seed}
    if strategy is None:
        optimizer = optimizer or keras.optimizers.Adam(config.learning_rate)
        prepare_for_training(model, optimizer, tf.zeros([1, *model.event_shape]))
        per_run = {"labels": train_labels, "free_bits": config.free_bits, **batches}
        if not fast:
            if jit_compile:
                raise ValueError("jit_compile=True compiles the fast runner only; use fast=True.")
            return optimizer, PlainEpochs(model, optimizer, train_images, **per_run)
        runner = FastEpochs(
            model, optimizer, train_images, jit_compile=bool(jit_compile), **per_run
        )
        return optimizer, runner
    if jit_compile:
        raise ValueError("jit_compile=True compiles fit's loop without a strategy only.")
    check_distributable(train_labels, config.free_bits)
    return distributed_epochs(
        strategy, model, optimizer, train_images, learning_rate=config.learning_rate, **batches
    )


def _held_out_elbo(model, images, config: TrainingConfig, labels, runner, strategy) -> float:
    """The ELBO on ``images``, binarized once for all epochs (the held-out epoch's draw)."""
    batch_size = max(config.batch_size, 256)
    if strategy is not None:  # summed across replicas
        return runner.held_out_elbo(images, batch_size)
    batches = held_out_batches(
        images, batch_size=batch_size, binarize=config.binarize, seed=config.seed, labels=labels
    )
    return float(evaluate_elbo(model, batches)["elbo"])


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


def _silent(*_args) -> None:
    """A ``report`` that says nothing (progress=False)."""


@contextlib.contextmanager
def _tensorboard(directory):
    """A TensorBoard writer (None without a directory), closed on every way out."""
    if directory is None:
        yield None
        return
    writer = tf.summary.create_file_writer(os.fspath(directory))
    try:
        yield writer
    finally:
        writer.close()


def _live_display() -> bool:
    """Whether a progress bar can redraw itself: a terminal or a notebook's kernel. Elsewhere
    (a log file, ``nohup``, a batch job) its carriage-return frames would fill the log."""
    ipython = sys.modules.get("IPython")  # imported by every notebook kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return sys.stdout.isatty() or type(shell).__name__ == "ZMQInteractiveShell"


class _EpochProgress:
    """Keras' Progbar over an epoch's steps (on a terminal or in a notebook), and the line
    that sums the epoch up (everywhere)."""

    def __init__(self, epoch, config, beta, runner):
        self.epoch, self.epochs = epoch, config.epochs
        self.steps = runner.steps_per_epoch
        self.bar = None
        if _live_display():
            ramp = f" (beta {beta:g})" if config.kl_warmup_epochs else ""
            print(f"Epoch {epoch}/{config.epochs}{ramp}")
            self.bar = keras.utils.Progbar(self.steps, stateful_metrics=["loss", "recon", "kl"])

    def __call__(self, steps_done, result: EpochResult):
        if self.bar is not None and steps_done < self.steps:
            self.bar.update(steps_done, values=self._values(result))

    @staticmethod
    def _values(result):
        return [("loss", result.train_loss), ("recon", result.reconstruction), ("kl", result.kl)]

    def finish(self, record: dict):
        if self.bar is not None:
            values = [("loss", record["train_loss"]), ("recon", record["reconstruction"])]
            self.bar.update(self.steps, values=[*values, ("kl", record["kl"])], finalize=True)
        test = "" if record["test_elbo"] is None else f", test ELBO {record['test_elbo']:.2f}"
        print(
            f"epoch {self.epoch}/{self.epochs}: train loss {record['train_loss']:.2f}{test}, "
            f"{record['images_per_second']:,.0f} images/s"
        )


def _write_summaries(writer, model, record, sample, config):
    images, labels = sample
    with writer.as_default(step=record["epoch"]):
        for key in ("train_loss", "reconstruction", "kl", "beta", "test_elbo", "images_per_second"):
            if record[key] is not None:
                tf.summary.scalar(key, record[key])
        tf.summary.image(
            "reconstructions",
            _reconstruction_grid(model, images[:_TENSORBOARD_IMAGES], config, labels),
            description="Held-out images: original (left) | reconstruction from the posterior "
            "mean (right).",
        )
    writer.flush()


def _reconstruction_grid(model, images, config, labels=None) -> tf.Tensor:
    """One image: a row per example, original | reconstruction; shape (1, 28n, 56, 1).

    A conditional model reconstructs under the images' ``labels``."""
    batches = held_out_batches(
        images, batch_size=len(images), binarize=config.binarize, seed=config.seed
    )
    x = tf.reshape(next(iter(batches)), [-1, *model.event_shape])
    originals = tf.reshape(x, [-1, 28, 28])
    given = () if labels is None else (labels[: len(images)],)
    recon = tf.reshape(model.reconstruct(x, *given), [-1, 28, 28])
    rows = tf.concat([originals, tf.cast(recon, originals.dtype)], axis=2)  # (n, 28, 56)
    return tf.reshape(rows, [1, -1, 56, 1])
