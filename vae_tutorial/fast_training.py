"""fit's loop, made fast; optional reading.

What :func:`vae_tutorial.fit` does for one epoch is ``for x in make_batches(...):
train_step_terms(model, optimizer, x, beta)``. This module does exactly that, faster:

- the images stay resident as one uint8 tensor and each batch is gathered and binarized in
  the graph (``batching.epoch_batch``, the definition ``make_batches`` uses), so no
  ``tf.data`` iterator runs between steps;
- many steps run per ``tf.function`` call (as Keras' ``steps_per_execution`` does), sized so
  that a call takes about a quarter of a second and the progress bar still moves;
- with XLA (``jit_compile``, the default for the flat MLP) the whole multi-step loop, batch
  gathering and binarization included, is one XLA computation, compiled once per model
  (dynamic binarization draws from a hash, ``batching.counter_uniform``: XLA's own random
  numbers are about ten times slower on CPU);
- the loop is written with ``tf.while_loop`` and traced without AutoGraph, which would
  otherwise spend about a second rewriting the source of every function the step calls.

Taught in notebook 05_training_on_mnist (which hands over to it without reading it).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vae_tutorial.batching import (
    epoch_batch,
    epoch_order,
    join_batch,
    num_batches,
    resident_images,
    split_batch,
)
from vae_tutorial.compiled import compiled_for
from vae_tutorial.step import train_step_terms

_FIRST_STEPS_PER_CALL = 32
_SECONDS_PER_CALL = 0.25  # the progress bar moves a few times per second
_MAX_STEPS_PER_CALL = 2000


@dataclass
class EpochResult:
    """Per-image means of one epoch and where it stopped on a NaN/Inf loss (1-based step)."""

    train_loss: float
    reconstruction: float
    kl: float
    images: int
    steps: int
    steps_per_epoch: int
    non_finite_step: int | None = None

    @classmethod
    def so_far(cls, sums, images, steps, steps_per_epoch, call_steps, bad) -> EpochResult:
        """The epoch after a call of ``call_steps`` steps: the means of the on-device ``sums``
        over ``images``, and the step that stopped it if the call met a NaN/Inf loss (``bad``,
        its 1-based step within the call, or sums that are not finite)."""
        result = cls(*(sums / max(images, 1)), images, steps, steps_per_epoch)
        if bad or not np.isfinite(sums).all():
            result.non_finite_step = steps - call_steps + (bad or call_steps)
        return result


def _steps(model, optimizer, resident, order, first, steps, beta, epoch, batch_size, size,
           binarize, seed, labels=None, free_bits=0.0):  # fmt: skip
    """``steps`` steps on batches ``first, first + 1, ...``; on-device sums [loss, recon, kl],
    the steps done and the 1-based step whose loss was NaN/Inf (0: none; the loop stops there).

    ``size``, the images per batch, is a Python int under XLA (which needs static shapes) and
    a tensor otherwise (one trace then serves every batch size). uint8 / 255 is finite and in
    [0, 1]: the batch needs no pixel check. ``labels`` (a conditional model's, resident like
    the images, checked once by fit) come with the batch from ``epoch_batch``.
    ``free_bits``, a Python float, is fixed per run.
    """

    def body(done, sums, bad):
        with tf.name_scope("batch"):  # named, for profiles and TensorBoard's graph
            x, batch_labels = split_batch(
                epoch_batch(resident, order, first + done, batch_size=batch_size, size=size,
                            binarize=binarize, seed=seed, epoch=epoch, labels=labels)
            )  # fmt: skip
        x = join_batch(tf.reshape(x, [size, *model.event_shape]), batch_labels)
        terms = train_step_terms(model, optimizer, x, beta, check_batch=False,
                                 free_bits=free_bits)  # fmt: skip
        done += 1
        bad = tf.where(tf.math.is_finite(terms[0]), bad, done)  # the loop stops at NaN/Inf
        return done, sums + tf.stack(terms) * tf.cast(size, tf.float32), bad

    zero = tf.constant(0, tf.int64)
    done, sums, bad = tf.while_loop(
        lambda done, sums, bad: (done < steps) & (bad == 0), body, (zero, tf.zeros([3]), zero)
    )
    return sums, done, bad


class FastEpochs:
    """Runs fit's epochs on ``images`` (uint8, N x 28 x 28) with the tricks above."""

    def __init__(self, model, optimizer, images, *, batch_size, binarize, seed, jit_compile,
                 labels=None, free_bits=0.0):  # fmt: skip
        self.model, self.optimizer = model, optimizer
        self.free_bits = free_bits
        self.n, self.batch_size, self.binarize, self.seed = len(images), batch_size, binarize, seed
        self.steps_per_epoch = num_batches(self.n, batch_size)
        self._resident = resident_images(images, binarize, seed)
        self._labels = None if labels is None else tf.constant(labels, tf.int32)
        if jit_compile:
            self._full = compiled_for(model, _steps, jit_compile=True, autograph=False)
            # The epoch's last, smaller batch is one step: run eagerly, it costs milliseconds,
            # where a second XLA compilation (another shape) would cost about a second.
            self._last = functools.partial(_steps, model)
        else:  # one plain graph for every batch size (size a tensor): one trace
            self._full = self._last = compiled_for(model, _steps, autograph=False)
        self._static_size = jit_compile
        self._steps_per_call = _FIRST_STEPS_PER_CALL

    def run(self, epoch: int, beta: float, progress=None) -> EpochResult:
        """Train 1-based ``epoch``; ``progress(steps_done, EpochResult)`` after every call."""
        order = tf.constant(epoch_order(self.n, self.seed, epoch - 1))
        full, last = divmod(self.n, self.batch_size)
        sums, done = np.zeros(3), 0
        # Full batches in calls of steps_per_call steps, then the last, smaller batch alone.
        while done < full + (last > 0):
            size = self.batch_size if done < full else last
            steps = min(self._steps_per_call, full - done) if done < full else 1
            started = time.perf_counter()
            chunk_sums, chunk_done, bad = (self._full if done < full else self._last)(
                self.optimizer, self._resident, order, tf.constant(done, tf.int64),
                tf.constant(steps, tf.int64), tf.constant(beta, tf.float32),
                tf.constant(epoch - 1, tf.int64), self.batch_size,
                size if self._static_size else tf.constant(size, tf.int64), self.binarize,
                self.seed, self._labels, self.free_bits,
            )  # fmt: skip
            sums += chunk_sums.numpy()
            images = done * self.batch_size + int(chunk_done) * size
            done += int(chunk_done)
            result = EpochResult.so_far(
                sums, images, done, self.steps_per_epoch, int(chunk_done), int(bad)
            )
            if result.non_finite_step is not None:
                return result
            if size == self.batch_size:
                rate = steps / max(time.perf_counter() - started, 1e-3)
                self._steps_per_call = int(
                    np.clip(rate * _SECONDS_PER_CALL, 8, _MAX_STEPS_PER_CALL)
                )
            if progress is not None:
                progress(done, result)
        return result
