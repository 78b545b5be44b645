"""fit's epochs, fast: many steps per ``tf.function`` call, the batches made in the graph.

:class:`FastEpochs` trains what ``vae_tutorial.epochs.PlainEpochs`` trains, step for step:

- the images stay resident as one tensor and each batch is gathered and binarized inside the
  graph (as ``make_batches`` defines it), so no ``tf.data`` iterator runs between steps;
- many steps run per call (as Keras' ``steps_per_execution`` does), sized so that a call
  takes about a quarter of a second and the progress bar still moves;
- with XLA (``jit_compile``, the default for the flat MLP) the whole multi-step loop, batch
  included, is one XLA computation, compiled once per model;
- the loop is written with ``tf.while_loop`` and traced without AutoGraph, which would
  otherwise spend about a second rewriting the source of every function the step calls.

Optional reading (see ``vae_tutorial.fast``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import batch_counter, epoch_order, join_batch, to_float
from vae_tutorial.compiled import compiled_for
from vae_tutorial.epochs import EpochResult, PlainEpochs, Progress
from vae_tutorial.fast.adam import fused_adam_updates
from vae_tutorial.fast.noise import standard_normal
from vae_tutorial.fast.packed_images import gather_images, resident_images
from vae_tutorial.losses import normal_sampler
from vae_tutorial.training_config import TrainingConfig

_FIRST_STEPS_PER_CALL = 32
_SECONDS_PER_CALL = 0.25  # the progress bar moves a few times per second
_MAX_STEPS_PER_CALL = 2000

# next_call(steps done) -> (the call's summed [loss, recon, kl], steps it ran, the 1-based
# step within it whose loss was NaN/Inf or 0, images of the epoch done after it)
NextCall = Callable[[int], tuple[np.ndarray, int, int, int]]


def run_in_calls(
    next_call: NextCall, steps_per_epoch: int, progress: Progress | None = None
) -> EpochResult:
    """An epoch run as calls of many steps each, stopped at the first NaN/Inf loss.

    The one stop-at-NaN loop of the fast and the distributed runners; returns the
    :class:`EpochResult`, ``progress(steps_done, result)`` after every call.
    """
    sums, done = np.zeros(3), 0
    result = EpochResult.of_sums(sums, 0, 0, steps_per_epoch)
    while done < steps_per_epoch:
        call_sums, call_steps, bad, images = next_call(done)
        sums += call_sums
        done += call_steps
        result = EpochResult.of_sums(sums, images, done, steps_per_epoch)
        if bad or not np.isfinite(sums).all():
            result.non_finite_step = done - call_steps + (bad or call_steps)
            return result
        if progress is not None:
            progress(done, result)
    return result


def _in_graph_batch(resident, order, labels, batch_number, *, batch_size, size, binarize, seed,
                    epoch):  # fmt: skip
    """Batch ``batch_number`` of the epoch, as ``make_batches`` makes it: the images at
    positions ``b * B ... b * B + size - 1`` of ``order``. A gather of positions, not a
    slice: XLA would compile once per slice start."""
    positions = tf.cast(batch_number, tf.int64) * batch_size + tf.range(size, dtype=tf.int64)
    indices = tf.gather(order, positions)
    x = to_float(gather_images(resident, indices), binarize, seed,
                 batch_counter(epoch, batch_number))  # fmt: skip
    return x, None if labels is None else tf.gather(labels, indices)


def _train_steps(model, optimizer, resident, order, first, steps, beta, epoch, batch_size, size,
                 binarize, seed, step_terms, labels=None, free_bits=0.0):  # fmt: skip
    """``steps`` steps on batches ``first, first + 1, ...``; on-device sums [loss, recon, kl],
    the steps done and the 1-based step whose loss was NaN/Inf (0: none; the loop stops there).

    ``size``, the images per batch, is a Python int under XLA (which needs static shapes) and
    a tensor otherwise (one trace then serves every batch size). ``labels`` (a conditional
    model's, resident like the images) come with the batch. ``free_bits``, a Python float, is
    fixed per run; ``step_terms`` is the run's step (``objectives.step_terms_for``).
    """

    def body(done, sums, bad):
        with tf.name_scope("batch"):  # named, for profiles and TensorBoard's graph
            x, batch_labels = _in_graph_batch(
                resident, order, labels, first + done, batch_size=batch_size, size=size,
                binarize=binarize, seed=seed, epoch=epoch,
            )  # fmt: skip
        x = join_batch(tf.reshape(x, [size, *model.event_shape]), batch_labels)
        terms = step_terms(model, optimizer, x, beta, free_bits=free_bits)
        done += 1
        bad = tf.where(tf.math.is_finite(terms[0]), bad, done)  # the loop stops at NaN/Inf
        return done, sums + tf.stack(terms) * tf.cast(size, tf.float32), bad

    zero = tf.constant(0, tf.int64)
    done, sums, bad = tf.while_loop(
        lambda done, sums, bad: (done < steps) & (bad == 0), body, (zero, tf.zeros([3]), zero)
    )
    return sums, done, bad


class FastEpochs(PlainEpochs):
    """A :class:`PlainEpochs` whose ``run`` trains the same steps with the tricks above; the
    same arguments and ``jit_compile``."""

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                 images: np.ndarray, config: TrainingConfig, labels: np.ndarray | None = None,
                 *, jit_compile: bool) -> None:  # fmt: skip
        super().__init__(model, optimizer, images, config, labels)
        self._resident = resident_images(images, config.binarize, config.seed)
        self._labels = None if labels is None else tf.constant(labels, tf.int32)
        if jit_compile:
            self._full = compiled_for(model, _train_steps, jit_compile=True, autograph=False)
            # The epoch's last, smaller batch is one step: run eagerly, it costs milliseconds,
            # where a second XLA compilation (another shape) would cost about a second.
            self._last: Callable = functools.partial(_train_steps, model)
        else:  # one plain graph for every batch size (size a tensor): one trace
            self._full = self._last = compiled_for(model, _train_steps, autograph=False)
        self._static_size = jit_compile
        self._steps_per_call = _FIRST_STEPS_PER_CALL

    def run(self, epoch: int, beta: float, progress: Progress | None = None) -> EpochResult:
        """Train 1-based ``epoch``; ``progress(steps_done, EpochResult)`` after every call."""
        config, n, batch_size = self.config, len(self.images), self.config.batch_size
        order = tf.constant(epoch_order(n, config.seed, epoch - 1))
        full = n // batch_size

        def next_call(done):  # full batches in calls of many steps, then the last one alone
            size = batch_size if done < full else n - full * batch_size
            steps = min(self._steps_per_call, full - done) if done < full else 1
            started = time.perf_counter()
            with normal_sampler(standard_normal), fused_adam_updates(self.optimizer):
                sums, steps_run, bad = (self._full if done < full else self._last)(
                    self.optimizer, self._resident, order, tf.constant(done, tf.int64),
                    tf.constant(steps, tf.int64), tf.constant(beta, tf.float32),
                    tf.constant(epoch - 1, tf.int64), batch_size,
                    size if self._static_size else tf.constant(size, tf.int64), config.binarize,
                    config.seed, self._step_terms, self._labels, config.free_bits,
                )  # fmt: skip
            steps_run, bad = int(steps_run), int(bad)
            if size == batch_size and not bad:
                rate = steps / max(time.perf_counter() - started, 1e-3)
                self._steps_per_call = int(
                    np.clip(rate * _SECONDS_PER_CALL, 8, _MAX_STEPS_PER_CALL)
                )
            return sums.numpy(), steps_run, bad, done * batch_size + steps_run * size

        return run_in_calls(next_call, self.steps_per_epoch, progress)
