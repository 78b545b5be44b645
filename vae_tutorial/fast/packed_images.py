"""The images fit's fast loop gathers its batches from, four pixels to a 32-bit word.

XLA on CPU gathers element by element, so gathering a quarter of the elements is a quarter
of the work; :func:`gather_images` turns the words back into the same bytes that
``tf.gather`` on the uint8 images gives. Optional reading (see ``vae_tutorial.fast``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vae_tutorial.batching import static_draw
from vae_tutorial.idx import as_tensor


def resident_images(images: np.ndarray, binarize: str, seed: int) -> tf.Tensor:
    """The uint8 images (for "static": ``make_batches``' fixed 0/1 draw) as one tensor, seen
    four pixels to an int32 word when their rows allow, sharing the array's memory."""
    if binarize == "static":
        images = static_draw(images, seed)
    if images.flags.c_contiguous and images.shape[-1] % 4 == 0:
        images = images.view(np.int32)  # (N, 28, 7): a view, not a copy
    return as_tensor(images)


def gather_images(resident: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """The uint8 images at ``indices`` of a :func:`resident_images` tensor."""
    images = tf.gather(resident, indices)
    if resident.dtype == tf.uint8:
        return images
    pixels = tf.bitcast(images, tf.uint8)  # (..., 7, 4): each word's four pixels, in order
    return tf.reshape(pixels, tf.concat([tf.shape(images)[:-1], [-1]], 0))
