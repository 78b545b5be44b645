"""Input checks that fail with a message naming the problem and the fix.

The package's generic checks live here (an int, a number, a choice, uint8 images, a batch's
pixels); a check that only one model, runner or command needs stands beside it, built from
these. The policy everywhere: a wrong type raises ``TypeError``, a wrong value ``ValueError``.
Shape and argument checks run once, in Python. Value checks on a batch (pixel range,
NaN/Inf) run on every batch; inside a ``tf.function`` they are in-graph assertions, so they
cost no host round-trip, and :func:`graph_errors_as_value_errors` turns their failure into a
plain ``ValueError`` at the boundary the learner called.

Taught in notebook 04_gradienttape_training_step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.types_ import TensorLike

if TYPE_CHECKING:  # likelihoods imports this module
    from vae_tutorial.likelihoods import Likelihood

IMAGE_SHAPE = (28, 28)
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


# --------------------------------------------------------------------------------------------
# Arguments: numbers, choices, image arrays, models


def check_int(
    value: int, name: str, minimum: int, maximum: int | None = None, fix: str = ""
) -> int:
    """Require an int (not a bool) in ``[minimum, maximum]``; return it as a Python int."""
    fix = f" {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.{fix}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be an int >= {minimum}{upper}, got {value}.{fix}")
    return int(value)


def check_latent_dim(latent_dim: int) -> int:
    """A model's ``latent_dim``: an int >= 1."""
    return check_int(latent_dim, "latent_dim", 1, fix="e.g. latent_dim=2.")


def check_hidden_sizes(intermediate_dim: int | Sequence[int]) -> list[int]:
    """An MLP's widths as a list: ``128`` or ``[512, 512]``, each a positive int."""
    sizes = [intermediate_dim] if isinstance(intermediate_dim, int) else list(intermediate_dim)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            f"intermediate_dim must be a positive int or a list of them, got {intermediate_dim!r}."
        )
    return sizes


def check_finite_number(
    value: float, name: str, *, minimum: float = 0.0, exclusive: bool = False, fix: str = ""
) -> float:
    """Require a finite number ``>= minimum`` (``> minimum`` when ``exclusive``)."""
    fix = f" {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}.{fix}")
    value = float(value)
    relation = ">" if exclusive else ">="
    too_small = value <= minimum if exclusive else value < minimum
    if not math.isfinite(value) or too_small:
        raise ValueError(
            f"{name} must be a finite number {relation} {minimum:g}, got {value}.{fix}"
        )
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Require one of ``choices`` (e.g. binarize: "none", "static" or "dynamic")."""
    if value not in choices:
        raise ValueError(
            f"{name}={value!r} is not a valid choice; use one of "
            f"{', '.join(repr(c) for c in choices)}."
        )
    return value


def check_binarize_for_likelihood(binarize: str, likelihood: Likelihood) -> str:
    """Require data the model's decoder likelihood models (its ``binarize_modes``).

    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    if binarize not in likelihood.binarize_modes:
        modes = " or ".join(repr(m) for m in likelihood.binarize_modes)
        raise ValueError(
            f"binarize={binarize!r} does not fit the model's likelihood {likelihood.name!r}: "
            f"{likelihood.why_this_data}. Use binarize={modes} (on the command line: "
            f"--binarize {likelihood.binarize_modes[0]})."
        )
    return binarize


def check_uint8_images(images: np.ndarray, name: str) -> np.ndarray:
    """Require raw uint8 images (N, 28, 28), N >= 1, as ``load_dataset`` returns them."""
    if hasattr(images, "train_images"):  # an ImageData
        raise TypeError(
            f"{name} must be an image array, not an ImageData: pass data.train_images "
            "or data.test_images."
        )
    if isinstance(images, tf.data.Dataset) or images is None:
        raise ValueError(
            f"{name} must be a uint8 array of shape (N, 28, 28), e.g. data.train_images from "
            f"vae_tutorial.load_dataset, got {type(images).__name__}; the batches are built "
            "from it (make_batches)."
        )
    array = np.asarray(images)
    if (
        array.dtype == np.uint8
        and array.shape[1:] == IMAGE_SHAPE
        and array.ndim == 3
        and len(array)
    ):
        return array
    hint = ""
    if array.dtype != np.uint8:
        hint = (
            " Pass data.train_images itself, not a float copy (each batch is converted as it "
            "is formed); floats in [0, 1] convert back with np.round(x * 255).astype(np.uint8)."
        )
    elif array.ndim == 2 and array.shape[1:] == (784,):
        hint = " Reshape flat images with images.reshape(-1, 28, 28)."
    raise ValueError(
        f"{name} must be the raw uint8 images (N, 28, 28) with N >= 1, as in data.train_images "
        f"from vae_tutorial.load_dataset; got dtype {array.dtype} and shape {array.shape}.{hint}"
    )


def check_labels(
    labels: TensorLike, num_classes: int, n: int | None = None, name: str = "labels"
) -> tf.Tensor:
    """Require integer class labels of shape ``(n,)`` in ``0 .. num_classes - 1``; return them
    as an int32 tensor.

    The range is checked when the labels have values (eagerly); in a graph it is not (fit
    checks its label arrays once, before training, with :func:`check_label_array`).
    """
    labels = tf.convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise TypeError(
            f"{name} must be integer class indices 0..{num_classes - 1}, got dtype "
            f"{labels.dtype.name}; convert them with labels.astype(int)."
        )
    if labels.shape.rank != 1:
        hint = " For one-hot rows use np.argmax(y, axis=1)." if labels.shape.rank == 2 else ""
        raise ValueError(
            f"{name} must have shape (batch,), one class index per image; got shape "
            f"{tuple(labels.shape)}.{hint}"
        )
    if n is not None and labels.shape[0] is not None and labels.shape[0] != n:
        raise ValueError(
            f"{name} has {labels.shape[0]} entries for a batch of {n} images; pass one label "
            "per image."
        )
    if tf.executing_eagerly() and labels.shape[0]:
        check_label_array(labels.numpy(), num_classes, name)
    return tf.cast(labels, tf.int32)


def check_label_array(
    labels: np.ndarray, num_classes: int | None, name: str = "labels", n_images: int | None = None
) -> np.ndarray:
    """Require a 1-d integer array with every value in ``0 .. num_classes - 1`` (>= 0 when
    ``num_classes`` is None) and, given ``n_images``, one label per image."""
    array = np.asarray(labels)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-d array of integer class indices (as data.train_labels from "
            f"vae_tutorial.load_dataset), got dtype {array.dtype} and shape {array.shape}."
        )
    if len(array) and array.min() < 0:
        raise ValueError(f"{name} must be class indices >= 0, got {array.min()}.")
    if len(array) and num_classes is not None and array.max() >= num_classes:
        raise ValueError(
            f"{name} range over {array.min()}..{array.max()}, but the model has "
            f"{num_classes} classes (0..{num_classes - 1}); build it with num_classes="
            f"{int(array.max()) + 1} or fix the labels."
        )
    if n_images is not None and len(array) != n_images:
        raise ValueError(
            f"{name} has {len(array):,} labels for {n_images:,} images; pass one label per "
            "image (e.g. data.train_labels with data.train_images)."
        )
    return array


def check_image_model(model: keras.Model) -> None:
    """Require a vae_tutorial VAE or ConvVAE for 28x28 images (what fit trains)."""
    shape = getattr(model, "event_shape", None)
    if shape is None or int(np.prod(shape)) != 784:
        raise ValueError(
            f"fit trains a vae_tutorial VAE or ConvVAE on 28x28 images; got {type(model).__name__}"
            f" with event_shape {shape}. Build the model with input_dim=784 (the default)."
        )


# --------------------------------------------------------------------------------------------
# Tensors: shapes (static) and pixel values (in the graph)


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


@contextlib.contextmanager
def graph_errors_as_value_errors() -> Iterator[None]:
    """Re-raise a failed in-graph pixel check as ``ValueError`` with its plain message."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        message = next((m for m in _IN_GRAPH_MESSAGES if m in error.message), None)
        if message is None:
            raise
        raise ValueError(message) from None
