"""The two-layer hierarchical (ladder) VAE: its ELBO and bound against numerical integration
in a model small enough to integrate (2 pixels, 1-d z1 and z2), its pieces against closed
forms computed in NumPy, and fit, checkpoints, ModelConfig and the CLI with it."""

import functools
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TEST, TRAIN, run_cli, run_cli_here
from scipy import integrate, stats

import vae_tutorial as vt
from vae_tutorial import cli
from vae_tutorial.objectives import elbo_evaluator_for, step_terms_for

X = np.array([1.0, 0.0], np.float32)  # the tiny model's image: two Bernoulli pixels


# --------------------------------------------------------------------------------------------
# The tiny model and its densities written out in NumPy, from the model's weights alone.


@pytest.fixture(scope="module")
def tiny():
    """A HierarchicalVAE of 2 pixels with 1-d z1 and z2, its weights drawn large enough that
    q(z1 | x, z2) differs clearly from both of the estimates it combines."""
    keras.utils.set_random_seed(0)
    model = vt.HierarchicalVAE(latent_dims=(1, 1), intermediate_dim=4, input_dim=2, seed=0)
    model(np.zeros((1, 2), np.float32))
    rng = np.random.default_rng(1)
    for variable in model.trainable_variables:
        variable.assign(0.8 * rng.standard_normal(variable.shape).astype(np.float32))
    return model


def weights(layer):
    """A Dense layer's kernel and bias as Python lists (a NumPy call per point would make the
    quadrature below ten times slower)."""
    return layer.kernel.numpy().astype(float).tolist(), layer.bias.numpy().astype(float).tolist()


def dense(layer_weights, h):
    kernel, bias = layer_weights
    return [
        b + sum(h_i * row[j] for h_i, row in zip(h, kernel, strict=True))
        for j, b in enumerate(bias)
    ]


def relu_mlp(hidden, h):
    for layer_weights in hidden:
        h = [max(value, 0.0) for value in dense(layer_weights, h)]
    return h


def log_normal(z, mu, sd):
    return -0.5 * math.log(2 * math.pi) - math.log(sd) - 0.5 * ((z - mu) / sd) ** 2


class GaussianMLP:
    """An Encoder's ``(mu, sd)`` for one input (a list), in Python floats."""

    def __init__(self, encoder):
        self.hidden = [weights(layer) for layer in encoder.hidden.layers]
        self.mu, self.log_var = weights(encoder.mu), weights(encoder.log_var)

    def __call__(self, h):
        h = relu_mlp(self.hidden, h)
        return dense(self.mu, h)[0], math.exp(0.5 * dense(self.log_var, h)[0])


class Reference:
    """The tiny model's densities for one image ``x``, each written from its formula with the
    model's weights, and its ELBO and log p(x) by 2-d quadrature."""

    def __init__(self, model, x):
        self.x = [float(value) for value in x]
        bottom_up = model.encoder
        d1 = relu_mlp([weights(layer) for layer in bottom_up.hidden.layers], self.x)
        self.mu_hat1 = dense(weights(bottom_up.mu), d1)[0]
        self.var_hat1 = math.exp(dense(weights(bottom_up.log_var), d1)[0])
        self.mu2, self.sd2 = GaussianMLP(bottom_up.top)(d1)
        self._prior = GaussianMLP(model.prior_z1)
        self._decoder = [weights(layer) for layer in model.decoder.hidden.layers]
        self._logits = weights(model.decoder.output_layer)

    @functools.lru_cache(maxsize=100_000)  # noqa: B019 (one Reference per module)
    def prior_1(self, z2):
        """p(z1 | z2)'s mean and standard deviation."""
        return self._prior([z2])

    @functools.lru_cache(maxsize=100_000)  # noqa: B019
    def posterior_1(self, z2):
        """q(z1 | x, z2): precisions add, the mean is their weighted mean."""
        mu_p, sd_p = self.prior_1(z2)
        precision = 1.0 / self.var_hat1 + 1.0 / sd_p**2
        mu = (self.mu_hat1 / self.var_hat1 + mu_p / sd_p**2) / precision
        return mu, math.sqrt(1.0 / precision)

    def log_px_z1(self, z1):
        logits = dense(self._logits, relu_mlp(self._decoder, [z1]))
        return sum(
            x * logit - max(logit, 0.0) - math.log1p(math.exp(-abs(logit)))
            for x, logit in zip(self.x, logits, strict=True)
        )

    def log_joint(self, z1, z2):
        return self.log_px_z1(z1) + log_normal(z1, *self.prior_1(z2)) + log_normal(z2, 0.0, 1.0)

    def log_q(self, z1, z2):
        return log_normal(z1, *self.posterior_1(z2)) + log_normal(z2, self.mu2, self.sd2)

    @functools.cached_property
    def elbo(self):
        """E_q[log p(x, z1, z2) - log q(z1, z2 | x)]."""

        def integrand(z1, z2):
            log_q = self.log_q(z1, z2)
            return math.exp(log_q) * (self.log_joint(z1, z2) - log_q)

        return self._integrate(integrand, self.posterior_1, (self.mu2, self.sd2))

    @functools.cached_property
    def log_px(self):
        """log of the integral of p(x, z1, z2) over z1 and z2."""

        def integrand(z1, z2):
            return math.exp(self.log_joint(z1, z2))

        return math.log(self._integrate(integrand, self.prior_1, (0.0, 1.0)))

    @staticmethod
    def _integrate(integrand, inner, outer, width=8.0):
        """The integral over z2 within ``width`` sd of ``outer`` (mu, sd) and over z1 within
        ``width`` sd of ``inner(z2)``."""
        mu, sd = outer
        value, _ = integrate.dblquad(
            integrand,
            mu - width * sd,
            mu + width * sd,
            lambda z2: inner(z2)[0] - width * inner(z2)[1],
            lambda z2: inner(z2)[0] + width * inner(z2)[1],
            epsabs=1e-6,
            epsrel=1e-5,
        )
        return value


@pytest.fixture(scope="module")
def reference(tiny):
    return Reference(tiny, X)


def per_example_elbo(model, n, x=X):
    log_px_z1, kl_1, kl_2 = vt.hierarchical_elbo_terms(model, np.tile(x, (n, 1)))
    return (log_px_z1 - kl_1 - kl_2).numpy().astype(np.float64)


def within(mean, target, standard_error, slack=1e-4):
    """Monte Carlo agreement: within 4 standard errors (and float32's rounding)."""
    return abs(mean - target) < 4 * standard_error + slack


# --------------------------------------------------------------------------------------------
# The pieces against closed forms


def test_precision_weighted_is_the_normalised_product_of_the_two_densities():
    rng = np.random.default_rng(2)
    mu_a, mu_b = rng.normal(size=(2, 50, 3)) * 3
    log_var_a, log_var_b = rng.uniform(-6, 6, size=(2, 50, 3))
    merged = vt.precision_weighted(vt.Gaussian(mu_a, log_var_a), vt.Gaussian(mu_b, log_var_b))
    var_a, var_b = np.exp(log_var_a), np.exp(log_var_b)
    var = 1.0 / (1.0 / var_a + 1.0 / var_b)
    np.testing.assert_allclose(np.exp(merged.log_var.numpy()), var, rtol=1e-10)
    np.testing.assert_allclose(merged.mu.numpy(), var * (mu_a / var_a + mu_b / var_b), rtol=1e-9)
    # one point's product of densities, normalised over a grid, is the merged density
    z = np.linspace(-40, 40, 200001)
    product = stats.norm.pdf(z, mu_a[0, 0], var_a[0, 0] ** 0.5) * stats.norm.pdf(
        z, mu_b[0, 0], var_b[0, 0] ** 0.5
    )
    product /= integrate.trapezoid(product, z)
    expected = stats.norm.pdf(z, merged.mu[0, 0].numpy(), var[0, 0] ** 0.5)
    np.testing.assert_allclose(product, expected, atol=1e-6 * expected.max())


def test_precision_weighted_stays_finite_for_extreme_variances():
    merged = vt.precision_weighted(
        vt.Gaussian(tf.constant([[1.0, 2.0]]), tf.constant([[-80.0, 80.0]])),
        vt.Gaussian(tf.constant([[3.0, 4.0]]), tf.constant([[80.0, -80.0]])),
    )
    np.testing.assert_allclose(merged.mu.numpy(), [[1.0, 4.0]], rtol=1e-6)
    np.testing.assert_allclose(merged.log_var.numpy(), [[-80.0, -80.0]], rtol=1e-6)


def test_gaussian_kl_against_numerical_integration():
    rng = np.random.default_rng(3)
    mu_q, mu_p = rng.normal(size=(2, 6))
    log_var_q, log_var_p = rng.uniform(-2, 2, size=(2, 6))
    kl = vt.gaussian_kl_per_dimension(vt.Gaussian(mu_q, log_var_q), vt.Gaussian(mu_p, log_var_p))
    for j in range(6):
        q = stats.norm(mu_q[j], math.exp(0.5 * log_var_q[j]))
        p = stats.norm(mu_p[j], math.exp(0.5 * log_var_p[j]))
        expected, _ = integrate.quad(
            lambda z, q=q, p=p: q.pdf(z) * (q.logpdf(z) - p.logpdf(z)), -30, 30, limit=200
        )
        assert kl.numpy()[j] == pytest.approx(expected, rel=1e-7, abs=1e-10)


def test_the_models_posterior_is_the_precision_weighted_combination(tiny, reference):
    ladder = tiny(np.tile(X, (5, 1)))
    for z2, mu, log_var in zip(ladder.z2.numpy()[:, 0], *ladder.q1, strict=True):
        expected_mu, expected_sd = reference.posterior_1(float(z2))
        assert float(mu[0]) == pytest.approx(expected_mu, rel=1e-5, abs=1e-6)
        assert math.exp(0.5 * float(log_var[0])) == pytest.approx(expected_sd, rel=1e-5)
    q2 = ladder.q2
    np.testing.assert_allclose(q2.mu.numpy()[:, 0], reference.mu2, rtol=1e-5)
    np.testing.assert_allclose(np.exp(0.5 * q2.log_var.numpy()[:, 0]), reference.sd2, rtol=1e-5)


def test_shapes():
    model = vt.HierarchicalVAE(latent_dims=(5, 3), intermediate_dim=16, seed=1)
    x = np.random.default_rng(0).uniform(size=(7, 784)).astype(np.float32)
    ladder = model(x)
    assert ladder.logits.shape == (7, 784)
    assert ladder.z1.shape == ladder.q1.mu.shape == ladder.p1.log_var.shape == (7, 5)
    assert ladder.z2.shape == ladder.q2.mu.shape == ladder.q2.log_var.shape == (7, 3)
    assert all(term.shape == (7,) for term in vt.hierarchical_elbo_terms(model, x))
    assert vt.hierarchical_iwae_bound(model, x, 3).shape == (7,)
    assert [t.shape for t in model.encode(x)] == [(7, 5), (7, 5)]
    samples = model.sample(4).numpy()
    assert samples.shape == (4, 784) and samples.min() >= 0 and samples.max() <= 1


# --------------------------------------------------------------------------------------------
# The ELBO and the bound against 2-d quadrature


@pytest.mark.slow  # the quadrature: about 15 s
def test_the_elbo_equals_numerical_integration(tiny, reference):
    elbo = per_example_elbo(tiny, 40000)
    mean, standard_error = elbo.mean(), elbo.std() / math.sqrt(len(elbo))
    assert within(mean, reference.elbo, standard_error), (mean, reference.elbo)
    assert reference.elbo < reference.log_px - 0.01  # a gap the bound below can close


@pytest.mark.slow  # the quadrature: about 15 s
def test_the_held_out_elbo_and_its_rates(tiny, reference):
    n = 40000
    batches = tf.data.Dataset.from_tensor_slices(np.tile(X, (n, 1))).batch(1000)
    scores = vt.evaluate_hierarchical_elbo(tiny, batches)
    standard_error = per_example_elbo(tiny, n).std() / math.sqrt(n)
    assert scores["images"] == n
    assert within(scores["elbo"], reference.elbo, standard_error)
    assert scores["kl"] == pytest.approx(scores["kl_1"] + scores["kl_2"], rel=1e-5)
    assert scores["elbo"] == pytest.approx(scores["log_likelihood"] - scores["kl"], rel=1e-5)
    # kl_2 is closed form and deterministic: KL(N(mu2, sd2^2) || N(0, 1)) in NumPy
    kl_2 = math.log(1 / reference.sd2) + (reference.sd2**2 + reference.mu2**2 - 1) / 2
    assert scores["kl_2"] == pytest.approx(kl_2, rel=1e-5)
    assert elbo_evaluator_for(tiny) is vt.evaluate_hierarchical_elbo


@pytest.mark.slow  # the quadrature: about 15 s
def test_the_importance_weighted_bound_rises_with_k_toward_log_px(tiny, reference):
    log_px = reference.log_px
    n = 4000
    xs = np.tile(X, (n, 1))
    bounds = {k: vt.hierarchical_iwae_bound(tiny, xs, k, seed=k).numpy() for k in (1, 10, 100)}
    means = {k: b.mean() for k, b in bounds.items()}
    errors = {k: b.std() / math.sqrt(n) for k, b in bounds.items()}
    assert within(means[1], reference.elbo, errors[1])  # L_1 is the ELBO
    for low, high in ((1, 10), (10, 100)):
        assert means[high] - means[low] > 4 * math.hypot(errors[low], errors[high]), means
    for k in bounds:  # a lower bound on log p(x)
        assert means[k] < log_px + 4 * errors[k] + 1e-4
    # with k = 5000 the bound closes at least 90% of the ELBO's gap to log p(x)
    large = vt.hierarchical_iwae_bound(tiny, xs[:200], 5000, seed=0).numpy()
    gap = log_px - reference.elbo
    assert log_px - large.mean() < 0.1 * gap + 4 * large.std() / math.sqrt(200), (log_px, large)


def test_iwae_bound_and_evaluate_iwae_give_the_hierarchical_bound():
    model = vt.HierarchicalVAE(latent_dims=(3, 2), intermediate_dim=16, seed=2)
    x = (np.random.default_rng(1).uniform(size=(6, 784)) > 0.5).astype(np.float32)
    expected = vt.hierarchical_iwae_bound(model, x, 7, seed=4).numpy()
    np.testing.assert_allclose(vt.iwae_bound(model, x, 7, seed=4).numpy(), expected, rtol=1e-6)
    batches = tf.data.Dataset.from_tensor_slices(x).batch(6)  # one batch: the same draws
    assert vt.evaluate_iwae(model, batches, 7, seed=4) == pytest.approx(expected.mean(), rel=1e-5)


# --------------------------------------------------------------------------------------------
# The training step


@pytest.mark.parametrize("free_bits", [0.0, 50.0])
def test_the_step_charges_the_kl_or_its_free_bits(free_bits):
    model = vt.HierarchicalVAE(latent_dims=(3, 2), intermediate_dim=16, seed=0)
    x = tf.constant((np.random.default_rng(0).uniform(size=(8, 784)) > 0.5).astype(np.float32))
    optimizer = keras.optimizers.Adam(1e-3)
    step = step_terms_for(model, vt.TrainingConfig(free_bits=free_bits))
    assert step is vt.hierarchical_step_terms
    loss, reconstruction, kl = step(model, optimizer, x, 0.5, free_bits=free_bits)
    # every dimension's KL is far below 50 nats: each of the 3 + 2 is charged 50
    charged = kl if free_bits == 0 else 5 * free_bits
    assert float(loss) == pytest.approx(float(reconstruction) + 0.5 * float(charged), rel=1e-6)
    assert 0 < float(kl) < 5 and 500 < float(reconstruction) < 600


# --------------------------------------------------------------------------------------------
# fit, checkpoints, ModelConfig


def hierarchical_run(model=None, **settings):
    if model is None:
        keras.utils.set_random_seed(0)
        model = vt.HierarchicalVAE(latent_dims=(2, 2), intermediate_dim=32)
    options = {
        k: settings.pop(k) for k in ("fast", "jit_compile", "checkpoint_dir") if k in settings
    }
    config = vt.TrainingConfig(**{"epochs": 2, "batch_size": 64, **settings})
    return vt.fit(model, TRAIN[:320], TEST, config, progress=False, **options)


def losses(history):
    return [[h["train_loss"], h["reconstruction"], h["kl"], h["test_elbo"]] for h in history]


@pytest.mark.slow
def test_fit_fast_and_plain_train_the_same_steps():
    plain = hierarchical_run(fast=False)
    graph = hierarchical_run(jit_compile=False)
    xla = hierarchical_run(jit_compile=True)
    np.testing.assert_allclose(losses(graph), losses(plain), rtol=1e-5)
    np.testing.assert_allclose(losses(xla), losses(plain), rtol=2e-3, atol=0.05)
    assert plain[1]["train_loss"] < plain[0]["train_loss"]


@pytest.mark.slow
def test_checkpoint_resume_equals_a_straight_run(tmp_path):
    straight = hierarchical_run()
    hierarchical_run(epochs=1, checkpoint_dir=tmp_path)
    keras.utils.set_random_seed(9)  # a new process would build other initial weights
    resumed = hierarchical_run(
        vt.HierarchicalVAE(latent_dims=(2, 2), intermediate_dim=32), checkpoint_dir=tmp_path
    )
    np.testing.assert_allclose(losses(resumed), losses(straight), rtol=1e-5)
    other = vt.HierarchicalVAE(latent_dims=(2, 3), intermediate_dim=32)
    with pytest.raises(ValueError, match="top_latent_dim 2 in the checkpoint, 3 in this model"):
        vt.restore_run(other, tmp_path)


def test_fit_under_a_strategy_is_refused_with_the_fix():
    model = vt.HierarchicalVAE(latent_dims=(2, 2), intermediate_dim=16)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with pytest.raises(ValueError, match="closed-form ELBO.*strategy=None"):
        vt.fit(model, TRAIN[:64], config=vt.TrainingConfig(epochs=1), strategy=strategy)


def test_model_config_round_trip():
    config = vt.ModelConfig(
        kind="hierarchical", latent_dim=4, top_latent_dim=3, intermediate_dim=32
    )
    model = config.build(seed=1)
    assert isinstance(model, vt.HierarchicalVAE) and model.latent_dims == (4, 3)
    assert vt.ModelConfig.of(model) == config
    assert vt.ModelConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    assert vt.ModelConfig(kind="hierarchical").top_latent_dim == 2
    rebuilt = vt.HierarchicalVAE(**model.get_config())
    assert rebuilt.latent_dims == (4, 3) and rebuilt.intermediate_dim == [32]


def test_a_one_layer_config_json_without_top_latent_dim_still_loads():
    saved = {"kind": "mlp", "latent_dim": 2, "intermediate_dim": [512], "likelihood": "bernoulli",
             "num_classes": None}  # fmt: skip
    config = vt.ModelConfig.from_dict(saved)
    assert config.top_latent_dim is None and config.as_dict() == {**saved, "prior": "normal"}


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: vt.HierarchicalVAE(latent_dims=2), TypeError, "pair .z1, z2."),
        (lambda: vt.HierarchicalVAE(latent_dims=(2, 2, 2)), ValueError, "got 3 sizes"),
        (lambda: vt.HierarchicalVAE(latent_dims=(2, 0)), ValueError, "latent_dim"),
        (lambda: vt.ModelConfig(top_latent_dim=2), ValueError, "top layer of kind='hier"),
        (lambda: vt.ModelConfig(kind="hierarchical", top_latent_dim=0), ValueError, "top_latent"),
        (lambda: vt.HierarchicalVAE(seed=0)(np.zeros((2, 28, 28))), ValueError, "784"),
        (lambda: vt.HierarchicalVAE(seed=0).sample(0), ValueError, "n must"),
        (
            lambda: vt.hierarchical_iwae_bound(vt.HierarchicalVAE(), np.zeros((1, 784)), 0),
            ValueError,
            "importance samples",
        ),  # fmt: skip
    ],
)
def test_bad_input_names_the_fix(make, error, match):
    with pytest.raises(error, match=match):
        make()


# --------------------------------------------------------------------------------------------
# The command line


@pytest.mark.slow
def test_cli_trains_resumes_and_evaluates_a_hierarchical_vae(tmp_path, capsys, monkeypatch):
    # The first run in a process of its own, as a learner starts it; the follow-ups in this one.
    out = tmp_path / "run"
    args = ["train", "--hierarchical", "--top-latent-dim", "3", "--intermediate-dim", "32",
            "--limit-train", "256", "--limit-test", "128", "--no-figures",
            "--out", out]  # fmt: skip
    first = run_cli(*args, "--epochs", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "hierarchical MLP VAE 784-32-2-32-3" in first.stdout
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["kind"] == "hierarchical" and config["top_latent_dim"] == 3
    second = run_cli_here(monkeypatch, capsys, *args, "--epochs", "2")
    assert second.returncode == 0, second.stdout + second.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert "Resumed from" in second.stdout
    evaluated = run_cli_here(monkeypatch, capsys, "evaluate", "--out", out, "--k", "20",
                             "--max-images", "50")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    iwae = json.loads((out / "metrics.json").read_text())["iwae"]
    assert iwae["k"] == 20 and iwae["images"] == 50 and iwae["epoch"] == 2
    assert iwae["elbo"] - 2.0 < iwae["log_likelihood"] < 0  # L_20 >= L_1, loosely


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--hierarchical", "--conv"], "cannot be combined with --conv"),
        (["--hierarchical", "--conditional"], "cannot be combined with --conditional"),
        (["--top-latent-dim", "3"], "--top-latent-dim is the size of the top layer"),
    ],
)
def test_cli_refuses_what_does_not_combine_in_one_line(flags, message, tmp_path, capsys):
    assert cli.main(["train", *flags, "--out", str(tmp_path / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
