"""The importance-weighted bound on a linear-Gaussian model whose log p(x) scipy computes.

Probabilistic PCA: p(z) = N(0, I), p(x | z) = N(Wz + b, sigma^2 I), so p(x) = N(b, WW^T +
sigma^2 I) exactly. With orthogonal columns in W the true posterior is diagonal, so a
diagonal q can match it (ELBO = log p(x)) or be moved away from it (ELBO < log p(x)).
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from vae_tutorial import VAE, iwae_bound

D, LATENT, SIGMA = 5, 2, 0.5
RNG = np.random.default_rng(3)
W = np.linalg.qr(RNG.normal(size=(D, D)))[0][:, :LATENT] * [2.0, 1.0]
B = RNG.normal(size=D)
POSTERIOR_PRECISION = np.diag(W.T @ W) / SIGMA**2 + 1.0  # diagonal because W^T W is


class LinearGaussian:
    """Encoder q(z | x) = the true posterior, optionally shifted and widened."""

    def __init__(self, shift=0.0, std_scale=1.0):
        self.shift, self.std_scale = shift, std_scale

    def posterior(self, x):
        mean = (x - B) @ W / SIGMA**2 / POSTERIOR_PRECISION + self.shift
        var = np.broadcast_to(self.std_scale**2 / POSTERIOR_PRECISION, mean.shape)
        return mean, var

    def encode(self, x):
        mean, var = self.posterior(np.asarray(x, dtype="float64"))
        return tf.constant(mean, tf.float32), tf.constant(np.log(var), tf.float32)

    def log_likelihood(self, x, z):
        mean = tf.matmul(z, tf.constant(W.T, tf.float32)) + tf.constant(B, tf.float32)
        return tf.reduce_sum(
            -0.5 * np.log(2 * np.pi * SIGMA**2) - tf.square(x - mean) / (2 * SIGMA**2), axis=-1
        )


def exact_log_px(x):
    return stats.multivariate_normal(B, W @ W.T + SIGMA**2 * np.eye(D)).logpdf(x)


def analytic_elbo(model, x):
    """E_q[log p(x|z)] - KL(q || p) in closed form for a diagonal Gaussian q."""
    m, s = model.posterior(x)
    residual = x - m @ W.T - B
    expected_log_lik = -D / 2 * np.log(2 * np.pi * SIGMA**2) - (
        np.sum(residual**2, axis=-1) + np.sum(s * np.sum(W**2, axis=0), axis=-1)
    ) / (2 * SIGMA**2)
    kl = 0.5 * np.sum(s + m**2 - 1 - np.log(s), axis=-1)
    return expected_log_lik - kl


X = (RNG.normal(size=(3, LATENT)) @ W.T + B + SIGMA * RNG.normal(size=(3, D))).astype("float32")


def test_exact_posterior_gives_elbo_equal_to_log_px():
    bound = iwae_bound(LinearGaussian(), X, k=1).numpy()
    np.testing.assert_allclose(bound, exact_log_px(X), atol=2e-4)


def bound_estimates(model, k, repeats=2000):
    """Mean and standard error of L_k for each x, from ``repeats`` independent estimates."""
    values = iwae_bound(model, np.repeat(X, repeats, axis=0), k).numpy().reshape(len(X), repeats)
    return values.mean(axis=1), values.std(axis=1) / np.sqrt(repeats)


def test_elbo_matches_its_closed_form_and_stays_below_log_px():
    model = LinearGaussian(shift=0.4, std_scale=1.8)
    mean, se = bound_estimates(model, k=1)
    np.testing.assert_array_less(np.abs(mean - analytic_elbo(model, X)), 5 * se)
    assert np.all(analytic_elbo(model, X) < exact_log_px(X) - 0.1)


def test_iwae_rises_with_k_toward_log_px():
    model = LinearGaussian(shift=0.4, std_scale=1.8)
    log_px = exact_log_px(X)
    estimates = [bound_estimates(model, k) for k in (1, 10, 100, 1000)]
    means = np.array([m for m, _ in estimates])
    errors = np.array([e for _, e in estimates])
    assert np.all(np.diff(means, axis=0) > 0)
    np.testing.assert_array_less(means[-1], log_px + 5 * errors[-1])
    gap_1, gap_1000 = log_px - means[0], log_px - means[-1]
    assert np.all(gap_1000 < 0.1 * gap_1)


def test_large_k_on_a_784_pixel_model_is_chunked_and_finite():
    x = RNG.integers(0, 2, size=(2, 784)).astype("float32")
    model = VAE(latent_dim=2, intermediate_dim=32)
    bound = iwae_bound(model, x, k=5000).numpy()
    assert bound.shape == (2,) and np.all(np.isfinite(bound))
    assert np.all(bound >= iwae_bound(model, np.repeat(x, 200, axis=0), k=1).numpy().min())


@pytest.mark.parametrize(("k", "error"), [(0, ValueError), (-1, ValueError), (2.5, TypeError)])
def test_bad_k_is_refused(k, error):
    # the package's policy: a wrong type raises TypeError, a wrong value ValueError
    with pytest.raises(error, match="k must be an int.*number of importance samples"):
        iwae_bound(LinearGaussian(), X, k)
