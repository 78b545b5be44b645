"""Decoder likelihoods against independent references (scipy, numerical integration, closed
forms), dequantized batches, bits per dimension, and the models, fit and the CLI using them."""

import functools
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import run_cli_here
from scipy import integrate, special, stats

import vae_tutorial as vt
from vae_tutorial.likelihoods import (
    LEVELS,
    LIKELIHOODS,
    continuous_bernoulli_log_normalizer,
    continuous_bernoulli_mean,
    discretized_logistic_log_prob,
    get_likelihood,
    positive_scale,
)

RNG = np.random.default_rng(3)
# lambda on a grid that includes both sides of 1/2 (the removable singularity), the switch
# between the Taylor series and the direct formula (|logit| = 0.1), and both ends.
LAMBDAS = [1e-6, 1e-3, 0.1, 0.3, 0.4, 0.5 - 1e-6, 0.5, 0.5 + 1e-6, 0.6, 0.9, 0.999, 1 - 1e-6]
SWITCH = [-0.1 - 1e-6, -0.1 + 1e-6, 0.1 - 1e-6, 0.1 + 1e-6]


def logit(lam):
    return math.log(lam) - math.log1p(-lam)


def f64(value):
    return tf.constant(value, tf.float64)


def quad(f):
    return integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-12, limit=200)[0]


# --------------------------------------------------------------------------------------------
# Continuous Bernoulli


@pytest.mark.parametrize("lam", LAMBDAS)
def test_continuous_bernoulli_normalizer_is_one_over_the_integral(lam):
    integral = quad(lambda x: lam**x * (1.0 - lam) ** (1.0 - x))
    got = float(continuous_bernoulli_log_normalizer(f64(logit(lam))))
    assert got == pytest.approx(-math.log(integral), abs=1e-12)


@pytest.mark.parametrize("eta", [-30.0, -3.0, -0.4, 1e-4, 0.49, 2.0, 30.0, *SWITCH])
def test_continuous_bernoulli_density_integrates_to_one_and_has_its_mean(eta):
    likelihood = get_likelihood("continuous_bernoulli")

    def density(x):
        x = tf.constant([[x]], tf.float64)
        return math.exp(float(likelihood.log_prob(x, tf.constant([[eta]], tf.float64))[0]))

    assert quad(density) == pytest.approx(1.0, abs=1e-9)
    mean = float(continuous_bernoulli_mean(f64(eta)))
    assert mean == pytest.approx(quad(lambda x: x * density(x)), abs=1e-9)


def test_continuous_bernoulli_is_smooth_across_the_series_switch_in_float32():
    # The exact log C is even in eta with curvature 1/12 at 0: across |eta| = 0.1 +- 1e-6
    # it changes by about 1e-7; float32 values must agree to a few ulps of log 2.
    eta = tf.constant(SWITCH, tf.float32)
    values = continuous_bernoulli_log_normalizer(eta).numpy()
    exact = [-math.log(quad(lambda x, e=e: special.expit(e) ** x * special.expit(-e) ** (1 - x)))
             for e in SWITCH]  # fmt: skip
    np.testing.assert_allclose(values, exact, atol=5e-7)


def test_continuous_bernoulli_gradients_are_finite_and_right_near_one_half():
    # d log C / d eta: the series gives eta/12 near 0; compare with a float64 central
    # difference of the integral itself.
    for eta in [0.0, 1e-7, -1e-3, 0.0999, 0.1001, 3.0]:
        x = tf.Variable(eta, dtype=tf.float64)
        with tf.GradientTape() as tape:
            y = continuous_bernoulli_log_normalizer(x)
        grad = float(tape.gradient(y, x))
        h = 1e-4

        def log_c(e):
            return -math.log(quad(lambda t: special.expit(e) ** t * special.expit(-e) ** (1 - t)))

        assert grad == pytest.approx((log_c(eta + h) - log_c(eta - h)) / (2 * h), abs=1e-7)
    logits = tf.Variable(tf.zeros([3, 784]))
    with tf.GradientTape() as tape:
        loss = -tf.reduce_sum(
            get_likelihood("continuous_bernoulli").log_prob(tf.fill([3, 784], 0.3), logits)
        )
    assert np.isfinite(tape.gradient(loss, logits).numpy()).all()


def test_continuous_bernoulli_samples_follow_its_cdf():
    likelihood = get_likelihood("continuous_bernoulli")
    for eta in [-4.0, 0.0, 2e-4, 1.5, 60.0]:
        samples = likelihood.sample(tf.fill([20000], eta), seed=5).numpy()

        def cdf(x, eta=eta):  # the closed-form CDF (lambda^x (1-lambda)^(1-x) + lambda - 1)
            # / (2 lambda - 1), written in eta = logit(lambda) so that it stays exact
            return x if eta == 0.0 else math.expm1(eta * x) / math.expm1(eta)

        assert stats.kstest(samples, np.vectorize(cdf)).pvalue > 1e-3


# --------------------------------------------------------------------------------------------
# Gaussians


def test_gaussian_fixed_variance_is_scipy_norm_and_mse_with_a_hidden_beta():
    x = RNG.random((4, 784)).astype(np.float32)
    mean = RNG.normal(0.5, 0.3, (4, 784)).astype(np.float32)
    for sigma in (0.1, 0.5):
        likelihood = get_likelihood({"name": "gaussian", "sigma": sigma})
        got = likelihood.log_prob(x, mean).numpy()
        np.testing.assert_allclose(got, stats.norm.logpdf(x, mean, sigma).sum(1), rtol=1e-5)
        # -log p = SSE / (2 sigma^2) + D log(sigma sqrt(2 pi)): SSE + 2 sigma^2 KL is the
        # negative ELBO times 2 sigma^2, up to that constant.
        sse = ((x - mean) ** 2).sum(1)
        constant = 784 * math.log(sigma * math.sqrt(2 * math.pi))
        np.testing.assert_allclose(-got * 2 * sigma**2, sse + 2 * sigma**2 * constant, rtol=1e-5)


def test_gaussian_learned_variance_is_scipy_norm_with_softplus_scale():
    x = RNG.random((3, 784)).astype(np.float32)
    mean = RNG.normal(0.5, 0.3, (3, 784)).astype(np.float32)
    raw = RNG.normal(-2.0, 2.0, (3, 784)).astype(np.float32)
    likelihood = get_likelihood("gaussian_learned_variance")
    got = likelihood.log_prob(x, np.concatenate([mean, raw], axis=-1)).numpy()
    sigma = np.logaddexp(0.0, raw.astype(np.float64)) + 1e-3
    np.testing.assert_allclose(got, stats.norm.logpdf(x, mean, sigma).sum(1), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Discretized logistic


@pytest.mark.parametrize("mean, scale", [(0.0, 1e-3), (0.37, 0.02), (0.5, 0.3), (1.2, 0.05)])
def test_discretized_logistic_is_logistic_cdf_differences_and_sums_to_one(mean, scale):
    k = np.arange(LEVELS)
    x = tf.constant(k / 255.0, tf.float64)
    got = discretized_logistic_log_prob(x, f64(mean), f64(scale)).numpy()
    upper = np.where(k < 255, (k + 0.5) / 255, np.inf)
    lower = np.where(k > 0, (k - 0.5) / 255, -np.inf)
    # F(b) - F(a); above the mean as S(a) - S(b) with S = 1 - F, so no rounding of values near 1
    from_cdf = stats.logistic.cdf(upper, mean, scale) - stats.logistic.cdf(lower, mean, scale)
    from_sf = stats.logistic.sf(lower, mean, scale) - stats.logistic.sf(upper, mean, scale)
    expected = np.where(lower > mean, from_sf, from_cdf)
    tiny = expected < 1e-300  # below float64: compare in the log domain only where defined
    np.testing.assert_allclose(got[~tiny], np.log(expected[~tiny]), rtol=1e-9, atol=1e-9)
    assert special.logsumexp(got) == pytest.approx(0.0, abs=1e-12)
    # its mean as computed for reconstructions: sum_k (k / 255) P(k)
    likelihood = get_likelihood("discretized_logistic")
    raw = math.log(math.expm1(scale - 1e-3)) if scale > 1e-3 else -40.0
    output = tf.constant([[mean, raw]], tf.float64)
    assert float(likelihood.mean(output)[0, 0]) == pytest.approx(
        float((k / 255.0 * np.exp(got)).sum()), abs=1e-6
    )


def test_discretized_logistic_samples_have_its_probabilities():
    likelihood = get_likelihood("discretized_logistic")
    output = tf.constant([[0.5, math.log(math.expm1(0.01 - 1e-3))]] * 50000, tf.float32)
    samples = np.round(likelihood.sample(output, seed=3).numpy()[:, 0] * 255).astype(int)
    probs = np.exp(discretized_logistic_log_prob(tf.constant(np.arange(256) / 255.0), f64(0.5),
                                                  f64(0.01)).numpy())  # fmt: skip
    counts = np.bincount(samples, minlength=256)
    keep = probs * len(samples) > 5  # chi-square on the levels with enough expected counts
    expected = probs[keep] / probs[keep].sum() * counts[keep].sum()
    assert stats.chisquare(counts[keep], expected).pvalue > 1e-3


# --------------------------------------------------------------------------------------------
# Dequantization and bits per dimension


def test_dequantized_batches_stay_in_their_8_bit_cell():
    images = RNG.integers(0, 256, (64, 28, 28), dtype=np.uint8)
    y = vt.binarize_images(images, "dequantize", seed=2).numpy()
    assert np.array_equal(np.floor(y * 256).astype(np.uint8), images)
    u = (y * 256 - images).ravel()
    # uniform on [0, 1): mean 1/2 with standard error sqrt(1/12 / n); 5 standard errors
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / u.size)
    again = vt.binarize_images(images, "dequantize", seed=2, epoch=1).numpy()
    assert not np.array_equal(y, again)  # a fresh draw every epoch


def test_bits_per_dim_closed_forms():
    # The uniform density on [0, 1]^D (log p = 0) dequantized, and the uniform distribution
    # over the 256 levels (log P = -D log 256), both cost exactly 8 bits per pixel.
    assert vt.bits_per_dim(0.0, dims=784, dequantized=True) == pytest.approx(8.0)
    assert vt.bits_per_dim(-784 * math.log(256), dims=784) == pytest.approx(8.0)
    assert vt.bits_per_dim(-784 * math.log(2), dims=784) == pytest.approx(1.0)


def test_dequantized_density_bound_holds_for_a_gaussian():
    # -log2 P(k) <= E_u[-log2 p((k + u) / 256)] + 8 per pixel (Jensen), with P(k) the
    # Gaussian's mass on the cell [k/256, (k+1)/256): checked by numerical integration.
    mean, sigma = 0.3, 0.05
    for k in (0, 60, 77, 110):
        mass = stats.norm.cdf((k + 1) / 256, mean, sigma) - stats.norm.cdf(k / 256, mean, sigma)
        expected_log_p = (
            256
            * integrate.quad(lambda y: stats.norm.logpdf(y, mean, sigma), k / 256, (k + 1) / 256)[0]
        )
        bound = vt.bits_per_dim(expected_log_p, dims=1, dequantized=True)
        assert -math.log2(mass) <= bound + 1e-9


# --------------------------------------------------------------------------------------------
# Models, fit, CLI


def grey_images(n, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.integers(0, 256, size=(3, 28, 28))
    noise = rng.integers(-30, 31, size=(n, 28, 28))
    return np.clip(means[rng.integers(0, 3, n)] + noise, 0, 255).astype(np.uint8)


def data_for(likelihood, images):
    mode = LIKELIHOODS[likelihood].binarize_modes[0]
    return mode, vt.binarize_images(images, mode, seed=0).numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, conv",
    # the convolutional model with one and with two outputs per pixel (it is slower to build)
    [(name, False) for name in LIKELIHOODS]
    + [("continuous_bernoulli", True), ("discretized_logistic", True)],
)
def test_models_build_call_and_train_a_step_with_each_likelihood(name, conv):
    keras.utils.set_random_seed(0)
    if conv:
        model, shape = vt.ConvVAE(latent_dim=2, likelihood=name), (28, 28, 1)
    else:
        model, shape = vt.VAE(latent_dim=2, intermediate_dim=32, likelihood=name), (784,)
    _, x = data_for(name, grey_images(8))
    x = x.reshape(-1, *shape)
    output, mu, _ = model(x)
    params = LIKELIHOODS[name].params_per_pixel
    assert output.shape[-1] == shape[-1] * params
    assert model.reconstruct(x).shape == x.shape
    assert model.sample(3).shape == (3, *shape)
    assert model.likelihood.sample(output, seed=1).shape == x.shape
    assert model.log_likelihood(x, mu).shape == (8,)
    optimizer = keras.optimizers.Adam(1e-3)
    before = float(model.likelihood.log_prob(x, model(x)[0]).numpy().mean())
    losses = [float(vt.train_step(model, optimizer, x)) for _ in range(3)]
    assert all(np.isfinite(losses)) and np.isfinite(before)
    clone = type(model).from_config(model.get_config())
    assert clone.likelihood.get_config() == model.likelihood.get_config()


def test_bernoulli_default_is_unchanged():
    keras.utils.set_random_seed(4)
    default = vt.VAE(latent_dim=2, intermediate_dim=16, seed=4)
    assert default.get_config()["likelihood"] == "bernoulli"
    x = (RNG.random((5, 784)) < 0.3).astype(np.float32)
    logits, mu, log_var = default(x)
    assert logits.shape == (5, 784)
    np.testing.assert_array_equal(
        vt.vae_loss(x, logits, mu, log_var).numpy(),
        vt.vae_loss(x, logits, mu, log_var, likelihood=default.likelihood).numpy(),
    )
    np.testing.assert_array_equal(default.reconstruct(x), tf.sigmoid(default.decode(mu)))


def test_checkpoint_round_trip_keeps_the_likelihood(tmp_path):
    model = vt.VAE(latent_dim=2, intermediate_dim=16, likelihood={"name": "gaussian", "sigma": 0.2})
    x = vt.binarize_images(grey_images(4), "dequantize").numpy().reshape(-1, 784)
    model(x)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    clone = vt.VAE.from_config(model.get_config())
    clone(x)
    tf.train.Checkpoint(model=clone).restore(path).expect_partial()
    assert clone.likelihood.sigma == 0.2
    mu = model.encode(x)[0]
    np.testing.assert_allclose(clone.log_likelihood(x, mu), model.log_likelihood(x, mu), rtol=1e-6)


@pytest.mark.slow
def test_fit_refuses_data_the_likelihood_does_not_model_and_trains_on_what_it_does():
    images = grey_images(128)
    model = vt.VAE(latent_dim=2, intermediate_dim=16, likelihood="gaussian_learned_variance")
    with pytest.raises(ValueError, match=r"binarize='dequantize'"):
        # TrainingConfig's default: dynamic binarization
        vt.fit(model, images, config=vt.TrainingConfig(epochs=1), progress=False)
    logistic = vt.VAE(latent_dim=2, intermediate_dim=16, likelihood="discretized_logistic")
    with pytest.raises(ValueError, match=r"binarize='none'"):
        vt.fit(
            logistic,
            images,
            config=vt.TrainingConfig(epochs=1, binarize="dequantize"),
            progress=False,
        )
    history = vt.fit(
        logistic,
        images,
        images[:32],
        config=vt.TrainingConfig(epochs=1, batch_size=32, binarize="none"),
        progress=False,
    )
    # a log-probability of 8-bit levels: at most 0 per pixel, so the ELBO is negative
    assert history[0]["test_elbo"] < 0 and np.isfinite(history[0]["train_loss"])


def test_unknown_likelihood_and_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"'bernoulli', 'continuous_bernoulli'"):
        vt.VAE(likelihood="poisson")
    with pytest.raises(TypeError, match="'bernoulli' takes no option sigma"):
        get_likelihood({"name": "bernoulli", "sigma": 1.0})
    with pytest.raises(TypeError, match="sigma must be a number"):  # a wrong type, named as such
        get_likelihood({"name": "gaussian", "sigma": "0.1"})
    with pytest.raises(ValueError, match="sigma"):
        get_likelihood({"name": "gaussian", "sigma": 0.0})
    assert float(positive_scale(tf.constant(-50.0), 1e-3)) == pytest.approx(1e-3)


@pytest.mark.slow
def test_cli_trains_and_evaluates_with_a_likelihood(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    tiny = ["--epochs", "1", "--intermediate-dim", "16", "--batch-size", "100", "--limit-train",
            "300", "--limit-test", "100", "--no-figures", "--out", out]  # fmt: skip
    run = functools.partial(run_cli_here, monkeypatch, capsys)
    refused = run("train", *tiny, "--likelihood", "gaussian")  # binarize dynamic
    assert refused.returncode == 2
    assert "Use --binarize='dequantize' (on the command line: --binarize dequantize)" in (
        refused.stderr
    )
    assert not (out / "config.json").exists()
    trained = run("train", *tiny, "--likelihood", "gaussian", "--binarize", "dequantize")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["likelihood"] == "gaussian"
    evaluated = run("evaluate", "--out", out, "--k", "4", "--max-images", "50")
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["iwae"]["log_likelihood"])
    # another likelihood is another model: the run directory refuses it
    other = run("train", *tiny, "--likelihood", "continuous_bernoulli", "--binarize", "dequantize")
    assert other.returncode == 1
    assert "likelihood 'gaussian' -> 'continuous_bernoulli'" in other.stderr


@pytest.mark.parametrize(
    "name, scored",
    [
        ("bernoulli", {"dynamic", "static"}),  # 0/1 pixels only: on grey values, a cross-entropy
        ("continuous_bernoulli", {"dequantize"}),
        ("gaussian", {"dequantize"}),
        ("gaussian_learned_variance", {"dequantize"}),
        ("discretized_logistic", {"none"}),
    ],
)
def test_each_likelihood_names_the_data_it_is_a_likelihood_of(name, scored):
    likelihood = get_likelihood(name)
    assert set(likelihood.scores_data) == scored
    assert scored <= set(likelihood.binarize_modes)  # it trains on that data too
