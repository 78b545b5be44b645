"""counter_random.counter_uniform, the hash generator behind dynamic binarization, against scipy:
its numbers are uniform on [0, 1), unrelated across neighbouring pixels, batches and seeds,
and the same with and without XLA."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from vae_tutorial.counter_random import counter_uniform

N = 200_000


def draw(seed, counter, n=N):
    return counter_uniform(tf.constant([n]), seed, tf.constant(counter, tf.int64)).numpy()


@pytest.mark.parametrize(("seed", "counter"), [(0, 0), (0, 1), (1, 0), (12345, 2**40 + 7)])
def test_uniform_by_kolmogorov_smirnov_and_chi_square(seed, counter):
    u = draw(seed, counter)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    counts = np.bincount((u * 256).astype(int), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_neighbours_batches_and_seeds_are_uncorrelated():
    # Independent uniforms: each correlation is ~N(0, 1/n); 5 standard errors is 0.011 here.
    bound = 5 / np.sqrt(N)
    u = draw(0, 0)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < bound  # adjacent pixels
    assert abs(np.corrcoef(u, draw(0, 1))[0, 1]) < bound  # next batch or epoch
    assert abs(np.corrcoef(u, draw(1, 0))[0, 1]) < bound  # next seed
    assert not np.array_equal(u, draw(0, 1))


def test_pairs_fill_the_unit_square_evenly():
    # Serial test: consecutive pairs binned on a 16 x 16 grid, chi-square against uniform.
    u = draw(7, 3)
    cells = (u[0::2] * 16).astype(int) * 16 + (u[1::2] * 16).astype(int)
    assert stats.chisquare(np.bincount(cells, minlength=256)).pvalue > 1e-3


def test_same_bits_with_and_without_xla():
    shape = tf.constant([32, 784])

    @tf.function(jit_compile=True)
    def compiled(counter):
        return counter_uniform(shape, 3, counter)

    counter = tf.constant(99, tf.int64)
    np.testing.assert_array_equal(compiled(counter).numpy(), counter_uniform(shape, 3, counter))
