"""Binarization and batches: how uint8 images become the float32 batches a step trains on.

Batch ``b`` of epoch ``e`` holds the images at positions ``b * B ... b * B + size - 1`` of
:func:`epoch_order`, converted by :func:`to_float` with the random counter
:func:`batch_counter` ``(e, b)``. :func:`make_batches` builds exactly that as a ``tf.data``
pipeline; fit's fast runner (``vae_tutorial.fast``) builds the same batches inside its XLA
loop. Images stay uint8 until then, so no float copy of a dataset is ever made.
Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_tutorial.counter_random import counter_uniform
from vae_tutorial.idx import aligned_empty, as_tensor
from vae_tutorial.types_ import Array, Batch, TensorLike
from vae_tutorial.validation import check_choice, check_int, check_label_array, check_uint8_images

BINARIZE_MODES = ("none", "static", "dynamic", "dequantize")
HELD_OUT_EPOCH = 2**30  # the epoch index of held-out batches: one fixed binarization
_STATIC_CHUNK = 4096  # images per chunk of the static draw (16 MB of float32 noise)
_STATIC_STREAM = 0x5747  # keeps the static draw apart from other uses of the same seed


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the images in epoch ``epoch``: a permutation fixed by (seed, epoch) alone.

    Computed with numpy rather than ``Dataset.shuffle``: tf.data's shuffle order also depends
    on TensorFlow's global seed, so an epoch would not be reproducible after a restart that
    sets a different global seed.
    """
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def static_draw(images: np.ndarray, seed: int) -> np.ndarray:
    """One fixed Bernoulli(intensity) draw per pixel, as uint8 0/1, fixed by ``seed`` alone.

    Made in chunks with numpy, so the only full-size copy is this uint8 one.
    """
    rng = np.random.default_rng([seed, _STATIC_STREAM])
    draw = aligned_empty(images.shape)  # so that a tensor of it needs no copy
    for start in range(0, len(images), _STATIC_CHUNK):
        chunk = images[start : start + _STATIC_CHUNK]
        draw[start : start + len(chunk)] = rng.random(chunk.shape, np.float32) * 255 < chunk
    return draw


def batch_counter(epoch: TensorLike, batch_number: TensorLike) -> tf.Tensor:
    """The random counter of a batch, ``epoch * 2**32 + batch_number``: a fresh draw per batch."""
    return tf.cast(epoch, tf.int64) * 2**32 + tf.cast(batch_number, tf.int64)


def to_float(images: TensorLike, binarize: str, seed: int, counter: TensorLike) -> tf.Tensor:
    """A uint8 batch (already 0/1 for "static") -> float32 values for the likelihood."""
    if binarize == "static":
        return tf.cast(images, tf.float32)
    if binarize == "dequantize":
        # 16 random bits, so that k + u is exact in float32 (8 + 16 bits) and stays below k + 1
        u = tf.floor(counter_uniform(tf.shape(images), seed, counter) * 2**16) / 2**16
        return (tf.cast(images, tf.float32) + u) / 256.0
    probs = tf.cast(images, tf.float32) / 255.0
    if binarize == "none":
        return probs
    return tf.cast(counter_uniform(tf.shape(probs), seed, counter) < probs, tf.float32)


def split_batch(batch: Batch) -> tuple[Array, Array | None]:
    """``(images, labels)`` of a batch: a conditional batch is that pair, a plain one has
    no labels (None). Taught in notebook 10_conditional_vae."""
    if isinstance(batch, (tuple, list)):
        images, labels = batch
        return images, labels
    return batch, None


def join_batch(images: Array, labels: Array | None) -> Batch:
    """The batch a model is called on: ``images``, or ``(images, labels)`` with labels."""
    return images if labels is None else (images, labels)


def binarize_images(
    images: np.ndarray, binarize: str = "dynamic", *, seed: int = 0, epoch: int = 0
) -> tf.Tensor:
    """Turn uint8 images (N, 28, 28) into float32 values in [0, 1] for a likelihood.

    - "none": grey levels ``images / 255`` in [0, 1]. A Bernoulli likelihood on grey levels is
      not a proper likelihood (it is the continuous cross-entropy): fine for training, but its
      nats are not comparable with published numbers.
    - "static": one fixed Bernoulli(intensity) draw per image, fixed by ``seed`` and the
      image's position in ``images``: the same every epoch ("statically binarized MNIST").
    - "dynamic": a fresh Bernoulli(intensity) draw every time an image is used, fixed by
      (seed, epoch): the literature's protocol (Burda et al. 2015).
    - "dequantize": grey levels spread uniformly over their 8-bit cell, ``(k + u) / 256``
      with a fresh u ~ U[0, 1) every time an image is used, fixed by (seed, epoch): the data
      of a density on [0, 1] (taught in notebook 08_likelihoods_for_grey_pixels).

    Taught in notebook 02_the_elbo_loss.
    """
    images = check_uint8_images(images, "images")
    binarize = check_choice(binarize, "binarize", BINARIZE_MODES)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    epoch = check_int(epoch, "epoch", 0, HELD_OUT_EPOCH)
    if binarize == "static":
        images = static_draw(images, seed)
    return to_float(images, binarize, seed, batch_counter(epoch, 0))


def num_batches(n_images: int, batch_size: int, drop_remainder: bool = False) -> int:
    """How many batches :func:`make_batches` yields for ``n_images`` images.

    Taught in notebook 05_training_on_mnist.
    """
    n_images = check_int(n_images, "n_images", 0)
    batch_size = check_int(batch_size, "batch_size", 1)
    return n_images // batch_size if drop_remainder else -(-n_images // batch_size)


def make_batches(
    images: np.ndarray,
    *,
    batch_size: int = 128,
    binarize: str = "dynamic",
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_remainder: bool = False,
    labels: np.ndarray | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of float32 batches (B, 28, 28) in [0, 1] for one epoch.

    ``images``: uint8 (N, 28, 28), e.g. ``data.train_images``, read in place (do not modify
    them while iterating) and uint8 until a batch is formed: no float copy of the dataset.
    ``binarize``: a mode of :func:`binarize_images`. With ``shuffle`` the order is
    :func:`epoch_order`'s, so epoch e is the same after a restart, order and binarization.
    The last, smaller batch is kept unless ``drop_remainder``. With ``labels`` (N,) each
    element is the pair ``(batch, labels)`` (notebook 10_conditional_vae).
    Taught in notebook 05_training_on_mnist.
    """
    images = check_uint8_images(images, "images")
    batch_size = check_int(batch_size, "batch_size", 1, 2**31 - 1)
    binarize = check_choice(binarize, "binarize", BINARIZE_MODES)
    seed = check_int(seed, "seed", 0, 2**63 - 1)
    epoch = check_int(epoch, "epoch", 0, HELD_OUT_EPOCH)

    n = len(images)
    if labels is not None:
        labels = tf.constant(check_label_array(labels, None, "labels", n).astype(np.int32))
    if binarize == "static":
        images = static_draw(images, seed)
    resident = as_tensor(images)  # shares the numpy array's memory when it can
    order = epoch_order(n, seed, epoch) if shuffle else np.arange(n, dtype=np.int64)
    order = tf.constant(order)

    def batch(number):
        indices = order[number * batch_size : (number + 1) * batch_size]
        x = to_float(tf.gather(resident, indices), binarize, seed, batch_counter(epoch, number))
        x = tf.ensure_shape(x, [batch_size if drop_remainder else None, *images.shape[1:]])
        return join_batch(x, None if labels is None else tf.gather(labels, indices))

    ds = tf.data.Dataset.range(num_batches(n, batch_size, drop_remainder))
    ds = ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def held_out_batches(
    images: np.ndarray, *, batch_size: int, binarize: str, seed: int, labels: Array | None = None
) -> tf.data.Dataset:
    """The batches a model is scored on: ``images`` in order, binarized by one fixed draw
    (the epoch ``HELD_OUT_EPOCH``), the same every epoch and after a restart.

    Taught in notebook 05_training_on_mnist.
    """
    return make_batches(
        images, batch_size=batch_size, binarize=binarize, shuffle=False, seed=seed,
        epoch=HELD_OUT_EPOCH, labels=labels,
    )  # fmt: skip
