"""The noise eps ~ N(0, I) of the reparameterization: ``keras.random.normal``'s numbers, drawn
fast under XLA. Optional reading (see ``vae_tutorial.fast``).

``keras.random.normal(shape, seed=generator)`` runs two TensorFlow ops: one turns the
generator's seed into a Philox key and counter, the other turns the key and counter into
normal numbers. XLA on CPU fuses the first into the loop over the numbers and so derives the
key again for every number: a fifth of a whole training step at batch 1024 with a 20-d latent
space (``python benchmarks/profile_step.py --config b``). :func:`standard_normal` runs the
same two ops with an XLA optimization barrier between them, so the key is derived once; the
numbers are the same, which ``tests/test_fast_noise.py`` checks with and without XLA.

fit's fast runner has ``losses.reparameterize`` draw with it (``losses.normal_sampler``).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.compiler.tf2xla.python.xla import optimization_barrier

from vae_tutorial.types_ import Seed, TensorLike

_AUTO_SELECT = 3  # tf.random.Algorithm.AUTO_SELECT, keras.random.normal's algorithm


def standard_normal(
    shape: TensorLike, dtype: tf.DType | str | None = None, seed: Seed = None
) -> tf.Tensor:
    """``keras.random.normal(shape, dtype=dtype, seed=seed)``, number for number.

    A ``keras.random.SeedGenerator`` advances exactly as keras.random.normal advances it;
    other seeds (an int) go to keras.random.normal itself.
    """
    if not isinstance(seed, keras.random.SeedGenerator):
        return keras.random.normal(shape, dtype=dtype, seed=seed)
    state = seed.next()
    if state.dtype != tf.int32:  # as Keras' TensorFlow backend folds its int64 state
        state = tf.cast(tf.math.floormod(state, tf.int32.max - 1), tf.int32)
    key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=state)
    key, counter = optimization_barrier(key, counter)  # derive the key once, not per number
    return tf.raw_ops.StatelessRandomNormalV2(
        shape=shape, key=key, counter=counter, alg=_AUTO_SELECT, dtype=dtype
    )
