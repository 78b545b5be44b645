"""The few type names the package's hints share, defined once.

TensorFlow and Keras ship no type information, so a type checker takes ``tf.Tensor`` for any
value: these names say to the reader what a function accepts.
"""

from __future__ import annotations

from typing import TypeAlias

import keras
import numpy as np
import tensorflow as tf

# Anything ``tf.convert_to_tensor`` takes: a tensor, a NumPy array or a Python number.
TensorLike: TypeAlias = tf.Tensor | np.ndarray | float

# A batch of images, or of labels: a tensor or a NumPy array.
Array: TypeAlias = tf.Tensor | np.ndarray

# What a model is called on: images, or ``(images, labels)`` for a conditional model.
Batch: TypeAlias = Array | tuple[Array, Array]

# A random seed: a ``keras.random.SeedGenerator`` (checkpointable), an int, or None.
Seed: TypeAlias = keras.random.SeedGenerator | int | None
