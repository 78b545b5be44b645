"""The importance-weighted bound on a linear-Gaussian model whose log p(x) scipy computes
(probabilistic PCA: linear_gaussian.py)."""

import keras
import numpy as np
import pytest
from linear_gaussian import RNG, LinearGaussian, X, analytic_elbo, exact_log_px

from vae_tutorial import VAE, iwae_bound


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


def test_a_seed_repeats_the_bound_after_the_global_seed_is_set_and_draws_anew_after():
    keras.utils.set_random_seed(0)
    model = VAE(latent_dim=2, intermediate_dim=16)
    x = RNG.integers(0, 2, size=(3, 784)).astype("float32")
    keras.utils.set_random_seed(0)
    first, second = (iwae_bound(model, x, k=5, seed=1).numpy() for _ in range(2))
    keras.utils.set_random_seed(0)
    np.testing.assert_array_equal(iwae_bound(model, x, k=5, seed=1).numpy(), first)
    assert not np.array_equal(first, second)
