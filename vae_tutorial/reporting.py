"""What fit reports while it trains: a progress bar and one line per epoch, and TensorBoard's
scalars and reconstructions (notebook 05_training_on_mnist, section 6).
"""

from __future__ import annotations

import contextlib
import os
import sys

import keras
import tensorflow as tf

from vae_tutorial.batching import held_out_batches
from vae_tutorial.epochs import EpochResult

_TENSORBOARD_IMAGES = 8


@contextlib.contextmanager
def tensorboard_writer(directory):
    """A TensorBoard writer (None without a directory), closed on every way out."""
    if directory is None:
        yield None
        return
    writer = tf.summary.create_file_writer(os.fspath(directory))
    try:
        yield writer
    finally:
        writer.close()


def live_display() -> bool:
    """Whether a progress bar can redraw itself: a terminal or a notebook's kernel. Elsewhere
    (a log file, ``nohup``, a batch job) its carriage-return frames would fill the log."""
    ipython = sys.modules.get("IPython")  # imported by every notebook kernel
    shell = ipython.get_ipython() if ipython is not None else None
    return sys.stdout.isatty() or type(shell).__name__ == "ZMQInteractiveShell"


class EpochProgress:
    """Keras' Progbar over an epoch's steps (on a terminal or in a notebook), and the line
    that sums the epoch up (everywhere)."""

    def __init__(self, epoch, config, beta, runner):
        self.epoch, self.epochs = epoch, config.epochs
        self.steps = runner.steps_per_epoch
        self.bar = None
        if live_display():
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


def write_summaries(writer, model, record, sample, config):
    images, labels = sample
    with writer.as_default(step=record["epoch"]):
        for key in ("train_loss", "reconstruction", "kl", "beta", "test_elbo", "images_per_second"):
            if record[key] is not None:
                tf.summary.scalar(key, record[key])
        tf.summary.image(
            "reconstructions",
            reconstruction_grid(model, images[:_TENSORBOARD_IMAGES], config, labels),
            description="Held-out images: original (left) | reconstruction from the posterior "
            "mean (right).",
        )
    writer.flush()


def reconstruction_grid(model, images, config, labels=None) -> tf.Tensor:
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
