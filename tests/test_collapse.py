"""Free bits, the KL per latent dimension and the mutual information I(x; z), checked against
references that are not the code under test: numerical integration, numpy, and a linear-
Gaussian encoder whose per-dimension KL and I(x; z) are known in closed form."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import TEST, TRAIN, small_vae
from scipy import integrate, stats

from vae_tutorial import (
    VAE,
    TrainingConfig,
    cli,
    fit,
    free_bits_kl,
    kl_divergence,
    kl_divergence_per_dimension,
    kl_per_dimension,
    mutual_information,
    negative_elbo_terms,
)
from vae_tutorial.cli import build_parser

RNG = np.random.default_rng(0)


def kl_by_integration(mu, sd):
    """KL(N(mu, sd^2) || N(0, 1)) as the integral of q log(q / p), by quadrature."""
    q = stats.norm(mu, sd)
    value, _ = integrate.quad(
        lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z)), mu - 12 * sd, mu + 12 * sd
    )
    return value


# --------------------------------------------------------------------------------------------
# KL per dimension and free bits


def test_kl_per_dimension_matches_numerical_integration_and_sums_to_the_kl():
    mu = RNG.normal(size=(3, 4)).astype("float32")
    log_var = RNG.normal(size=(3, 4)).astype("float32")
    got = kl_divergence_per_dimension(mu, log_var).numpy()
    assert got.shape == (3, 4)
    expected = np.vectorize(kl_by_integration)(mu, np.exp(0.5 * log_var))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(kl_divergence(mu, log_var).numpy(), got.sum(axis=1), rtol=1e-6)


def test_free_bits_kl_clamps_each_dimensions_batch_mean():
    mu = np.array([[0.05, 2.0, 0.0], [-0.05, 1.0, 0.0]], "float32")
    log_var = np.array([[0.0, -1.0, 0.01], [0.0, -2.0, -0.01]], "float32")
    sd = np.exp(0.5 * log_var)
    per_dim = np.vectorize(kl_by_integration)(mu, sd).mean(axis=0)  # batch means, per dim
    assert per_dim[0] < 0.1 < per_dim[1] and per_dim[2] < 0.1  # two under the floor
    for floor in (0.0, 0.1, 5.0):
        got = float(free_bits_kl(mu, log_var, floor))
        assert got == pytest.approx(np.maximum(floor, per_dim).sum(), rel=1e-4, abs=1e-6)
    assert float(free_bits_kl(mu, log_var, 0.0)) == pytest.approx(
        float(tf.reduce_mean(kl_divergence(mu, log_var))), rel=1e-6
    )


def test_free_bits_trains_on_the_clamped_kl_and_reports_the_true_one():
    x = np.array([[0.0, 1.0], [1.0, 1.0]], "float32")
    logits = tf.zeros([2, 2])
    mu = tf.Variable([[0.05, 2.0], [-0.05, 1.0]])
    log_var = tf.Variable(tf.zeros([2, 2]))
    with tf.GradientTape() as tape:
        loss, reconstruction, kl = negative_elbo_terms(x, logits, mu, log_var, 2.0, free_bits=0.5)
    true_kl = 0.5 * np.mean(np.sum(mu.numpy() ** 2, axis=1))  # log_var = 0: KL = mu^2 / 2
    assert float(kl) == pytest.approx(true_kl, rel=1e-6)
    assert float(reconstruction) == pytest.approx(2 * np.log(2), rel=1e-6)  # 2 pixels, logits 0
    clamped = 0.5 + 0.5 * np.mean(mu.numpy()[:, 1] ** 2)  # dim 0 is under the floor of 0.5
    assert float(loss) == pytest.approx(float(reconstruction) + 2.0 * clamped, rel=1e-6)
    gradient = tape.gradient(loss, mu).numpy()
    np.testing.assert_array_equal(gradient[:, 0], 0.0)  # free: no pull toward the prior
    np.testing.assert_allclose(gradient[:, 1], 2.0 * mu.numpy()[:, 1] / 2, rtol=1e-6)


def test_free_bits_zero_is_the_plain_loss():
    x = RNG.integers(0, 2, size=(5, 6)).astype("float32")
    logits, mu, log_var = (RNG.normal(size=s).astype("float32") for s in [(5, 6), (5, 3), (5, 3)])
    plain = negative_elbo_terms(x, logits, mu, log_var, 1.5)
    np.testing.assert_array_equal(
        negative_elbo_terms(x, logits, mu, log_var, 1.5, free_bits=0.0), plain
    )
    as_tensor = negative_elbo_terms(x, logits, mu, log_var, 1.5, free_bits=tf.constant(0.0))
    np.testing.assert_allclose(as_tensor, plain, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [True, False])
def test_fit_with_free_bits_above_every_dimensions_kl(jit_compile):
    # A floor of 50 nats per dimension is above any KL these runs reach, so the KL term is
    # the constant 2 x 50 for the 2-d model: the loss is reconstruction + 100 exactly.
    history = fit(
        small_vae(),
        TRAIN,
        TEST,
        config=TrainingConfig(epochs=2, batch_size=64, free_bits=50.0),
        progress=False,
        jit_compile=jit_compile,
    )
    for h in history:
        assert h["kl"] < 50.0
        assert h["train_loss"] == pytest.approx(h["reconstruction"] + 2 * 50.0, rel=1e-5)
    plain = fit(
        small_vae(), TRAIN, TEST, config=TrainingConfig(epochs=2, batch_size=64), progress=False
    )
    # without the KL's pull the posteriors drift from the prior: the true KL grows
    assert history[-1]["kl"] > plain[-1]["kl"]


def test_free_bits_is_validated_in_the_config_and_the_cli(capsys):
    assert TrainingConfig().free_bits == 0.0
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        TrainingConfig(free_bits=-0.5)
    with pytest.raises(TypeError, match="free_bits must be a number"):
        TrainingConfig(free_bits="0.5")
    with pytest.raises(ValueError, match="free_bits must be a finite number"):
        negative_elbo_terms(np.zeros((1, 2)), np.zeros((1, 2)), [[0.0]], [[0.0]], free_bits=-1.0)
    assert build_parser().parse_args(["train", "--free-bits", "0.25"]).free_bits == 0.25
    assert cli.main(["train", "--free-bits", "-1"]) == 2  # checked once, before any data
    assert "error: --free-bits must be a finite number >= 0" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# A linear-Gaussian encoder: x ~ N(0, W W^T + s^2 I), q(z | x) = N(A x + b, diag(v)).
# Then z is Gaussian with covariance A Cov(x) A^T + diag(v), so
#   E_x KL_j = 1/2 (v_j + (A Cov(x) A^T)_jj + b_j^2 - 1 - log v_j)
#   I(x; z)  = 1/2 log det(A Cov(x) A^T + diag(v)) - 1/2 sum_j log v_j.

D, LATENT, N = 3, 2, 4000
W = np.array([[1.0, 0.2], [-0.5, 0.8], [0.3, -0.7]])
COV_X = W @ W.T + 0.3**2 * np.eye(D)
X = RNG.multivariate_normal(np.zeros(D), COV_X, size=N).astype("float32")


class LinearEncoder:
    """The encode(x) -> (mu, log_var) contract of the package's models, by hand."""

    event_shape = (D,)
    compute_dtype = "float32"

    def __init__(self, a, b, v):
        self.a, self.b, self.v = np.asarray(a), np.asarray(b), np.asarray(v)

    def encode(self, x):
        mu = np.asarray(x, "float64") @ self.a.T + self.b
        log_var = np.broadcast_to(np.log(self.v), mu.shape)
        return tf.constant(mu, tf.float32), tf.constant(log_var, tf.float32)

    def exact_kl_per_dimension(self):
        signal = np.diag(self.a @ COV_X @ self.a.T)
        return 0.5 * (self.v + signal + self.b**2 - 1 - np.log(self.v))

    def exact_mutual_information(self):
        cov_z = self.a @ COV_X @ self.a.T + np.diag(self.v)
        return 0.5 * np.linalg.slogdet(cov_z)[1] - 0.5 * np.log(self.v).sum()


ENCODER = LinearEncoder([[0.8, -0.3, 0.4], [0.1, 0.5, -0.6]], [0.3, -0.2], [0.4, 0.25])


def batches(x=X, size=500):
    return [x[i : i + size] for i in range(0, len(x), size)]


def test_kl_per_dimension_matches_the_linear_gaussian_closed_form():
    got = kl_per_dimension(ENCODER, batches())
    mu, log_var = ENCODER.encode(X)
    per_image = kl_divergence_per_dimension(mu, log_var).numpy()
    standard_error = per_image.std(axis=0) / np.sqrt(N)
    exact = ENCODER.exact_kl_per_dimension()
    assert got.shape == (LATENT,)
    assert np.all(np.abs(got - exact) < 4 * standard_error), (got, exact, standard_error)


def test_mutual_information_matches_the_gaussian_closed_form():
    exact = ENCODER.exact_mutual_information()
    assert 0.5 < exact < 2.0 < np.log(N) / 3  # informative, and far from the log N ceiling
    got = mutual_information(ENCODER, batches(), n_samples=2, seed=1)
    # Monte Carlo error (about 1 / sqrt(2 N) per nat of spread) plus the estimator's small
    # downward bias at N = 4000: both below 0.05 nats here.
    assert got == pytest.approx(exact, abs=0.05), (got, exact)
    assert got <= kl_per_dimension(ENCODER, batches()).sum()  # I <= mean KL (ELBO surgery)


def test_mutual_information_is_at_most_log_n_and_near_zero_without_information():
    sharp = LinearEncoder(ENCODER.a * 10, ENCODER.b, [1e-4, 1e-4])  # nearly deterministic
    assert sharp.exact_mutual_information() > np.log(500) + 5
    got = mutual_information(sharp, batches(X[:500]))
    assert np.log(500) - 0.05 < got <= np.log(500) + 1e-4
    blind = LinearEncoder(ENCODER.a * 0.01, ENCODER.b, [1.0, 1.0])  # z barely depends on x
    tiny = blind.exact_mutual_information()
    assert tiny < 1e-3
    estimates = [mutual_information(blind, batches(X[:1000]), seed=s) for s in range(3)]
    assert all(-0.01 < e < 0.01 for e in estimates), estimates


def test_mutual_information_refuses_bad_arguments():
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        mutual_information(ENCODER, batches(), n_samples=0)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        mutual_information(ENCODER, batches(), n_samples=1.5)
    with pytest.raises(ValueError, match="empty"):
        mutual_information(ENCODER, [])
    with pytest.raises(ValueError, match="empty"):
        kl_per_dimension(ENCODER, [])


def test_kl_per_dimension_refuses_a_learned_prior_and_says_what_to_use():
    model = VAE(latent_dim=2, intermediate_dim=16, prior="mog", seed=0)
    with pytest.raises(ValueError, match=r"needs the N\(0, I\) prior.*'mog'.*vt.active_units"):
        kl_per_dimension(model, batches(TEST.reshape(-1, 784).astype("float32") / 255, 100))
