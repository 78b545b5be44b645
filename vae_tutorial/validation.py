"""Input checks that fail with a message naming the problem and the fix.

Shape checks are static: they run once, when a function is called eagerly or traced. Value
checks (pixel range, NaN/Inf) run on every batch; inside a ``tf.function`` they are in-graph
assertions, so they cost no host round-trip, and :func:`clear_errors` turns their
``InvalidArgumentError`` into a plain ``ValueError`` at the boundary the learner called.

Taught in notebook 04_gradienttape_training_step.
"""

from __future__ import annotations

import contextlib
import functools

import tensorflow as tf

PIXEL_RANGE_MESSAGE = (
    "pixel values must lie in [0, 1], but the batch has values outside that range. "
    "If your images are uint8 in 0..255, divide them by 255 first "
    "(vae_tutorial.make_batches does this for you)."
)
NON_FINITE_MESSAGE = (
    "the batch contains NaN or Inf values. Check how it was built: a division by zero "
    "or a missing value in the data; every pixel must be a finite number in [0, 1]."
)
_IN_GRAPH_MESSAGES = (PIXEL_RANGE_MESSAGE, NON_FINITE_MESSAGE)


def _check(condition: tf.Tensor, message: str):
    """Raise now when eager; in a graph, return the assertion op."""
    if not tf.executing_eagerly():
        return tf.debugging.Assert(condition, [message])
    if not bool(condition):
        raise ValueError(message)
    return None


def check_pixels(x: tf.Tensor) -> tf.Tensor:
    """Require every value of ``x`` to be finite and in [0, 1]; return ``x``.

    In a graph, use the returned tensor: it depends on the checks, so nothing computed from
    it (a forward pass, a gradient, a variable update) can run on a bad batch.
    """
    checks = [
        _check(tf.reduce_all(tf.math.is_finite(x)), NON_FINITE_MESSAGE),
        _check(tf.reduce_all((x >= 0.0) & (x <= 1.0)), PIXEL_RANGE_MESSAGE),
    ]
    if tf.executing_eagerly():
        return x
    with tf.control_dependencies(checks):
        return tf.identity(x)


def check_same_shape(x: tf.Tensor, logits: tf.Tensor) -> None:
    """Require ``x`` and ``logits`` to have compatible shapes (the decoder's output shape)."""
    if not x.shape.is_compatible_with(logits.shape):
        raise ValueError(
            f"x has shape {tuple(x.shape)} but logits have shape {tuple(logits.shape)}; "
            "they must match pixel for pixel. Reshape x to the decoder's output shape "
            "(a flat MLP decoder gives (batch, 784); the convolutional one (batch, 28, 28, 1))."
        )


def check_batch_shape(x: tf.Tensor, event_shape: tuple[int, ...], model_name: str) -> None:
    """Require a batch of shape ``(batch, *event_shape)``, naming the reshape that fixes it."""
    expected = (None, *event_shape)
    if not x.shape.is_compatible_with(expected):
        got = tuple(x.shape)
        fix = f"reshape it with x.reshape(-1, {', '.join(map(str, event_shape))})"
        if x.shape.rank == len(expected) and len(event_shape) == 1:
            fix += f" or build the model with input_dim={got[-1]}"
        raise ValueError(
            f"{model_name} expects batches of shape (batch, {', '.join(map(str, event_shape))}) "
            f"but got {got}; {fix}."
        )


def check_finite_number(value: float, name: str, *, minimum: float = 0.0) -> float:
    """Require a finite Python number of at least ``minimum`` (e.g. beta, learning rate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    if not minimum <= value < float("inf"):  # also false for NaN
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}.")
    return float(value)


def _clear_message(error: tf.errors.InvalidArgumentError) -> str | None:
    return next((m for m in _IN_GRAPH_MESSAGES if m in error.message), None)


@contextlib.contextmanager
def clear_errors():
    """Re-raise the in-graph checks' failures as ``ValueError`` with their plain message."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = _clear_message(error)
        if message is None:
            raise
        raise ValueError(message) from None


def with_clear_errors(function):
    """Decorator form of :func:`clear_errors`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with clear_errors():
            return function(*args, **kwargs)

    return wrapper
