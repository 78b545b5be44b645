"""fast.noise.standard_normal gives keras.random.normal's numbers: eagerly, in a graph, in XLA;
and XLA's numbers for a seed are not the graph's, which the fast runner's docs say."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial.fast.noise import standard_normal
from vae_tutorial.losses import normal_sampler, reparameterize


def draws(normal, seed, shape, dtype, times=3):
    return [normal(shape, dtype, seed).numpy() for _ in range(times)]


def keras_normal(shape, dtype, seed):
    return keras.random.normal(shape, dtype=dtype, seed=seed)


@pytest.mark.parametrize("shape", [(5, 3), (1024, 20), (7,)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_seed_generator_gives_keras_numbers_and_advances_as_keras_does(shape, dtype):
    ours, theirs = keras.random.SeedGenerator(11), keras.random.SeedGenerator(11)
    got = draws(standard_normal, ours, shape, dtype)
    want = draws(keras_normal, theirs, shape, dtype)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got[0], got[1])  # a fresh draw each call
    np.testing.assert_array_equal(ours.state.numpy(), theirs.state.numpy())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_inside_a_compiled_loop_the_numbers_are_keras_numbers(jit_compile):
    ours, theirs = keras.random.SeedGenerator(3), keras.random.SeedGenerator(3)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loop(normal, seed):
        def body(i, total):
            return i + 1, total + normal((256, 16), "float32", seed) * tf.cast(i + 1, tf.float32)

        return tf.while_loop(lambda i, _: i < 4, body, (0, tf.zeros((256, 16))))[1]

    np.testing.assert_array_equal(loop(standard_normal, ours), loop(keras_normal, theirs))
    np.testing.assert_array_equal(ours.state.numpy(), theirs.state.numpy())


def test_an_int_seed_gives_keras_numbers_every_call():
    first, second = (standard_normal((4, 2), "float32", 5).numpy() for _ in range(2))
    np.testing.assert_array_equal(first, keras_normal((4, 2), "float32", 5))
    np.testing.assert_array_equal(first, second)


def test_reparameterize_draws_with_the_sampler_of_the_block_it_runs_in():
    calls = []

    def sampler(shape, dtype=None, seed=None):
        calls.append(seed)
        return standard_normal(shape, dtype=dtype, seed=seed)

    mu, log_var = tf.zeros([3, 2]), tf.zeros([3, 2])
    plain = reparameterize(mu, log_var, seed=keras.random.SeedGenerator(4))
    with normal_sampler(sampler):
        swapped = reparameterize(mu, log_var, seed=keras.random.SeedGenerator(4))
    after = reparameterize(mu, log_var, seed=5)
    assert len(calls) == 1  # only inside the block
    np.testing.assert_array_equal(plain, swapped)
    np.testing.assert_array_equal(after, keras.random.normal((3, 2), seed=5))


def test_under_xla_a_seed_gives_other_standard_normal_numbers_than_in_a_graph():
    n = 100_000

    def draw(jit_compile):
        seed = keras.random.SeedGenerator(9)
        return tf.function(
            lambda: standard_normal((n,), "float32", seed), jit_compile=jit_compile
        )().numpy()

    eager = keras.random.normal((n,), seed=keras.random.SeedGenerator(9)).numpy()
    graph, xla = draw(False), draw(True)
    np.testing.assert_array_equal(graph, eager)  # the plain loop's numbers
    assert np.mean(xla == eager) < 0.01  # under XLA: other numbers ...
    assert abs(xla.mean()) < 5 / math.sqrt(n)  # ... of N(0, 1): mean and variance within
    assert abs(xla.var() - 1) < 5 * math.sqrt(2 / n)  # 5 standard errors
