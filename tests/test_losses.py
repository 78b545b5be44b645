"""The loss pieces against references that are not the code under test (numpy, scipy)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from vae_tutorial import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    kl_divergence,
    negative_elbo_per_example,
    reparameterize,
    vae_loss,
)

RNG = np.random.default_rng(0)


def kl_reference(mu, log_var):
    """KL(N(mu, s^2) || N(0, 1)) per dimension as log(1/s) + (s^2 + mu^2)/2 - 1/2, summed."""
    s = np.exp(0.5 * log_var)
    return np.sum(-np.log(s) + (s**2 + mu**2) / 2 - 0.5, axis=-1)


def test_kl_matches_independent_closed_form():
    mu = RNG.normal(size=(7, 5))
    log_var = RNG.normal(size=(7, 5))
    got = kl_divergence(mu.astype("float32"), log_var.astype("float32")).numpy()
    assert got.shape == (7,)
    np.testing.assert_allclose(got, kl_reference(mu, log_var), rtol=1e-5, atol=1e-5)


def test_kl_matches_monte_carlo_estimate():
    mu = np.array([[0.5, -1.0, 2.0]])
    log_var = np.array([[-1.0, 0.3, 0.8]])
    sd = np.exp(0.5 * log_var[0])
    z = RNG.normal(mu[0], sd, size=(400_000, 3))
    log_ratio = (stats.norm.logpdf(z, mu[0], sd) - stats.norm.logpdf(z)).sum(axis=1)
    estimate, standard_error = log_ratio.mean(), log_ratio.std() / np.sqrt(len(log_ratio))
    got = float(kl_divergence(mu, log_var)[0])
    assert abs(got - estimate) < 5 * standard_error


def test_kl_is_zero_exactly_at_the_prior():
    assert float(kl_divergence(np.zeros((1, 4)), np.zeros((1, 4)))[0]) == 0.0


def test_bernoulli_log_likelihood_matches_scipy_logpmf():
    x = RNG.integers(0, 2, size=(6, 784)).astype("float32")
    logits = RNG.normal(scale=3.0, size=(6, 784)).astype("float32")
    reference = stats.bernoulli.logpmf(x, special.expit(logits.astype("float64"))).sum(axis=1)
    got = bernoulli_log_likelihood(x, logits).numpy()
    assert got.shape == (6,)
    np.testing.assert_allclose(got, reference, rtol=1e-5)


def test_bernoulli_log_likelihood_is_finite_and_exact_for_extreme_logits():
    x = np.array([[1.0, 0.0, 1.0, 0.0]], dtype="float32")
    logits = np.array([[100.0, 100.0, -100.0, -100.0]], dtype="float32")
    got = float(bernoulli_log_likelihood(x, logits)[0])
    # Where scipy's logpmf is finite (x agrees with the logit's sign) it gives ~0 per pixel;
    # where it gives -inf (p rounds to 0 or 1 in float64), the exact value is -100 per pixel.
    agreeing = stats.bernoulli.logpmf([1, 0], special.expit([100.0, -100.0])).sum()
    exact = agreeing + special.log_expit(-100.0) + special.log_expit(-100.0)
    assert np.isfinite(got)
    assert got == pytest.approx(exact, rel=1e-6)
    assert stats.bernoulli.logpmf(0, special.expit(100.0)) == -np.inf


def test_bernoulli_log_likelihood_sums_over_every_non_batch_axis():
    x = RNG.integers(0, 2, size=(3, 28, 28, 1)).astype("float32")
    logits = RNG.normal(size=(3, 28, 28, 1)).astype("float32")
    flat = bernoulli_log_likelihood(x.reshape(3, -1), logits.reshape(3, -1))
    np.testing.assert_allclose(bernoulli_log_likelihood(x, logits), flat, rtol=1e-6)


def test_gaussian_log_density_matches_scipy():
    z, mu, log_var = (RNG.normal(size=(4, 3)) for _ in range(3))
    reference = stats.norm.logpdf(z, mu, np.exp(0.5 * log_var)).sum(axis=1)
    got = gaussian_log_density(z, mu, log_var).numpy()
    np.testing.assert_allclose(got, reference, rtol=1e-6)


def test_reparameterize_samples_have_the_right_mean_and_variance():
    n = 200_000
    mu = np.full((n, 2), [1.5, -2.0], dtype="float32")
    log_var = np.full((n, 2), [np.log(0.25), np.log(4.0)], dtype="float32")
    z = reparameterize(mu, log_var).numpy()
    np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0], atol=5 * 2 / np.sqrt(n))
    np.testing.assert_allclose(z.var(axis=0), [0.25, 4.0], rtol=0.02)


def test_reparameterize_gradients_match_their_analytic_values():
    mu = tf.Variable([[0.3, -1.2, 2.0]])
    log_var = tf.Variable([[0.5, -0.7, 0.1]])
    with tf.GradientTape() as tape:
        z = reparameterize(mu, log_var)
        f = tf.reduce_sum(z**2)
    d_mu, d_log_var = tape.gradient(f, [mu, log_var])
    z = z.numpy()
    # z = mu + exp(log_var/2) eps: dz/dmu = 1, dz/dlog_var = (z - mu) / 2; df/dz = 2z.
    np.testing.assert_allclose(d_mu.numpy(), 2 * z, rtol=1e-5)
    np.testing.assert_allclose(d_log_var.numpy(), 2 * z * (z - mu.numpy()) / 2, rtol=1e-5)


def test_vae_loss_matches_a_scipy_computation():
    x = RNG.integers(0, 2, size=(5, 784)).astype("float32")
    logits = RNG.normal(size=(5, 784)).astype("float32")
    mu, log_var = RNG.normal(size=(5, 2)), RNG.normal(size=(5, 2))
    log_px = stats.bernoulli.logpmf(x, special.expit(logits.astype("float64"))).sum(axis=1)
    for beta in (1.0, 0.5, 4.0):
        reference = np.mean(-log_px + beta * kl_reference(mu, log_var))
        got = float(vae_loss(x, logits, mu.astype("float32"), log_var.astype("float32"), beta))
        assert got == pytest.approx(reference, rel=1e-5)


def test_per_example_negative_elbo_matches_a_scipy_computation():
    x = RNG.integers(0, 2, size=(6, 784)).astype("float32")
    logits = RNG.normal(size=(6, 784)).astype("float32")
    mu, log_var = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 3))
    log_px = stats.bernoulli.logpmf(x, special.expit(logits.astype("float64"))).sum(axis=1)
    kl = kl_reference(mu, log_var)
    terms = negative_elbo_per_example(
        x, logits, mu.astype("float32"), log_var.astype("float32"), 2.0
    )
    for got, reference in zip(terms, (-log_px + 2.0 * kl, -log_px, kl), strict=True):
        assert got.shape == (6,)
        np.testing.assert_allclose(got.numpy(), reference, rtol=1e-5)


def test_vae_loss_of_zero_logits_is_784_log_2():
    x = RNG.integers(0, 2, size=(8, 784)).astype("float32")
    loss = vae_loss(x, np.zeros((8, 784), "float32"), np.zeros((8, 2)), np.zeros((8, 2)))
    assert float(loss) == pytest.approx(784 * np.log(2), rel=1e-6)


@pytest.mark.parametrize(
    "x, match",
    [
        (np.full((2, 784), 255.0, "float32"), r"divide them by 255"),
        (np.full((2, 784), -0.5, "float32"), r"values outside that range"),
        (np.full((2, 784), np.nan, "float32"), r"NaN or Inf"),
        (np.full((2, 784), np.inf, "float32"), r"NaN or Inf"),
        (np.zeros((2, 28, 28), "float32"), r"x has shape \(2, 28, 28\) but logits have shape"),
    ],
)
def test_bad_pixels_and_shapes_get_a_clear_error(x, match):
    with pytest.raises(ValueError, match=match) as error:
        vae_loss(x, np.zeros((2, 784), "float32"), np.zeros((2, 2)), np.zeros((2, 2)))
    assert "function_node" not in str(error.value)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf")])
def test_bad_beta_is_refused(beta):
    with pytest.raises(ValueError, match="beta must be a finite number"):
        vae_loss(np.zeros((1, 4)), np.zeros((1, 4)), np.zeros((1, 2)), np.zeros((1, 2)), beta)
