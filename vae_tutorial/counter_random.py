"""A counter-based random generator: uniforms that are a hash of (seed, counter, position).

The random pixels of dynamic binarization come from here (``batching.to_float``), so that
``make_batches`` and fit's runners, with or without XLA, draw exactly the same bits.
"""

from __future__ import annotations

import tensorflow as tf

from vae_tutorial.types_ import TensorLike


def _mix32(x):
    """MurmurHash3's 32-bit finalizer: a bijection on uint32 whose every input bit flips
    about half of the output bits."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16)) * 0x85EBCA6B
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 13)) * 0xC2B2AE35
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _words(value):
    """The low and high 32-bit halves of an int64, as uint32."""
    value = tf.cast(value, tf.int64)
    low = tf.bitwise.bitwise_and(value, 0xFFFFFFFF)
    return [tf.cast(low, tf.uint32), tf.cast(tf.bitwise.right_shift(value, 32), tf.uint32)]


def counter_uniform(shape: TensorLike, seed: TensorLike, counter: TensorLike) -> tf.Tensor:
    """float32 uniforms in [0, 1) fixed by (``seed``, ``counter``): a counter-based generator.

    Like ``tf.random.stateless_uniform``, each number is a hash of its position and a key,
    here MurmurHash3's finalizer applied twice. Why not that function: fit draws these inside
    an XLA loop, where TensorFlow's Philox runs about ten times slower on CPU than this hash;
    and integer arithmetic gives the same bits with or without XLA, so ``make_batches`` and
    fit draw exactly the same pixels.
    """
    key = tf.constant(0x9E3779B9, tf.uint32)
    for word in _words(seed) + _words(counter):
        key = _mix32(tf.bitwise.bitwise_xor(key, word) + 0x9E3779B9)
    position = tf.cast(tf.reshape(tf.range(tf.reduce_prod(shape)), shape), tf.uint32)
    bits = _mix32(_mix32(tf.bitwise.bitwise_xor(position, key)) + key)
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) / 2**24  # 24 exact bits
