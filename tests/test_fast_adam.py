"""fast.adam: Keras's Adam update with its assignments last gives Keras's numbers bit for bit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial.fast.adam import adam_update_step, fused_adam_updates

SHAPES = [(784, 40), (40,), (3, 5, 2)]


def trained_weights(optimizer, jit_compile, steps=60, fused=False):
    """The weights after ``steps`` updates from fixed starting points with varied gradients,
    inside a ``tf.while_loop`` as fit's fast runner runs them."""
    rng = np.random.default_rng(0)
    weights = [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in SHAPES]
    optimizer.build(weights)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def train():
        def body(i):
            scale = tf.cast(i + 1, tf.float32)
            gradients = [tf.sin(w * scale) * 0.3 + tf.cos(w) / scale for w in weights]
            optimizer.apply_gradients(zip(gradients, weights, strict=True))
            return (i + 1,)

        return tf.while_loop(lambda i: i < steps, body, (tf.constant(0),))

    if fused:
        with fused_adam_updates(optimizer):
            train()
    else:
        train()
    return [w.numpy() for w in weights]


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize(
    "settings",
    [{}, {"learning_rate": 3e-2, "beta_1": 0.5, "epsilon": 1e-3}, {"weight_decay": 0.1}],
)
def test_the_update_is_keras_adams_bit_for_bit(jit_compile, settings):
    theirs = trained_weights(keras.optimizers.Adam(**settings), jit_compile)
    ours = trained_weights(keras.optimizers.Adam(**settings), jit_compile, fused=True)
    start = trained_weights(keras.optimizers.Adam(**settings), jit_compile, steps=0)
    for a, b, w0 in zip(ours, theirs, start, strict=True):
        assert not np.array_equal(a, w0)  # the weights moved
        np.testing.assert_array_equal(a, b)


def test_the_block_swaps_the_update_of_plain_adam_only_and_restores_it():
    adam = keras.optimizers.Adam()
    with fused_adam_updates(adam):
        assert adam.update_step.__func__ is adam_update_step
    assert adam.update_step.__func__ is keras.optimizers.Adam.update_step
    others = [keras.optimizers.Adam(amsgrad=True), keras.optimizers.AdamW(), keras.optimizers.SGD()]
    for optimizer in others:
        with fused_adam_updates(optimizer):
            assert optimizer.update_step.__func__ is type(optimizer).update_step
