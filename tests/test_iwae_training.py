"""Training on the importance-weighted bound (vae_tutorial.iwae), against references written
independently of the package: a linear-Gaussian model whose log p(x) scipy computes, a
float64 NumPy L_k and its finite differences (linear_gaussian.py), and the ELBO step.

Every Monte Carlo comparison allows 4 standard errors of its own estimates, and every
outcome (a rise with k, a lower variance) is asserted beyond 4 of its standard errors."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import one_cli_error_line, run_cli, run_cli_here, small_vae
from linear_gaussian import LATENT, TrainableLinearGaussian, X, exact_log_px, numpy_bound

import vae_tutorial as vt
from vae_tutorial.iwae import iwae_terms
from vae_tutorial.objectives import step_terms_for
from vae_tutorial.step import train_step_terms

SHIFT, STD_SCALE = 0.4, 1.8  # q away from the true posterior: L_1 < L_k < log p(x)


def off_posterior_model(seed=0):
    return TrainableLinearGaussian(shift=SHIFT, std_scale=STD_SCALE, seed=seed)


def keras_draws(generator_state, shape):
    """The numbers keras.random.normal draws from a seed generator in ``generator_state``."""
    generator = keras.random.SeedGenerator(0)
    generator.state.assign(generator_state)
    return keras.random.normal(shape, seed=generator).numpy().astype("float64")


def mean_and_se(values, axis=0):
    return values.mean(axis=axis), values.std(axis=axis, ddof=1) / np.sqrt(values.shape[axis])


# --- the value: -loss is L_k --------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["plain", "dreg"])
def test_the_loss_is_minus_the_numpy_l_k_of_the_same_draws(estimator):
    model = off_posterior_model()
    state = model.seed_generator.state.numpy()
    x = np.repeat(X, 4, axis=0)
    loss = float(vt.iwae_loss(model, x, 7, estimator=estimator))
    eps = keras_draws(state, (7, len(x), LATENT))
    assert loss == pytest.approx(-numpy_bound(model.parameters(), x, eps).mean(), rel=1e-5)


def test_minus_the_loss_is_l_k_rising_with_k_toward_the_exact_log_px():
    model, rng, repeats = off_posterior_model(), np.random.default_rng(0), 2000
    x = np.repeat(X, repeats, axis=0)  # each image `repeats` times: rows i * repeats + r
    means, errors = [], []
    for k in (1, 10, 100):
        ours = -iwae_terms(model, x, k)[0].numpy().reshape(len(X), repeats)
        # L_k estimated independently: NumPy, float64, draws of its own
        theirs = numpy_bound(model.parameters(), x, rng.normal(size=(k, len(x), LATENT)))
        (mean, se), (their_mean, their_se) = (
            mean_and_se(v.reshape(len(X), repeats), axis=1) for v in (ours, theirs)
        )
        np.testing.assert_array_less(np.abs(mean - their_mean), 4 * np.hypot(se, their_se))
        means.append(mean)
        errors.append(se)
    means, errors = np.array(means), np.array(errors)
    log_px = exact_log_px(X)
    assert np.all(np.diff(means, axis=0) > 4 * np.hypot(errors[1:], errors[:-1]))  # rises
    np.testing.assert_array_less(means[-1], log_px + 4 * errors[-1])  # stays below log p(x)
    assert np.all(log_px - means[-1] < 0.1 * (log_px - means[0]))  # and approaches it


# --- the gradient's expectation -----------------------------------------------------------


def numpy_gradient_draws(parameters, k, draws, h=1e-5):
    """Central finite differences of the NumPy batch-mean -L_k of X, one per draw (common
    random numbers): {name: (n_draws, size)}. ``draws``: (n_draws, k, len(X), LATENT)."""
    n = len(draws)
    eps = draws.transpose(1, 0, 2, 3).reshape(k, n * len(X), LATENT)
    x = np.tile(X, (n, 1))  # draw-major rows, as eps

    def loss(p):
        return -numpy_bound(p, x, eps).reshape(n, len(X)).mean(axis=1)

    gradients = {}
    for name, value in parameters.items():
        columns = []
        for j in range(value.size):
            moved = [value.copy(), value.copy()]
            moved[0].flat[j] += h
            moved[1].flat[j] -= h
            up, down = (loss({**parameters, name: m}) for m in moved)
            columns.append((up - down) / (2 * h))
        gradients[name] = np.stack(columns, axis=1)
    return gradients


def tf_gradient_draws(model, x, k, estimator, calls):
    """The gradient of iwae_loss on ``x``, ``calls`` times: {name: (calls, size)}."""

    @tf.function
    def gradient():
        with tf.GradientTape() as tape:
            loss = vt.iwae_loss(model, x, k, estimator=estimator)
        return tape.gradient(loss, model.trainable_variables)

    draws = [[g.numpy().ravel() for g in gradient()] for _ in range(calls)]
    names = [v.name for v in model.trainable_variables]
    return {name: np.stack([d[i] for d in draws]) for i, name in enumerate(names)}


@pytest.mark.parametrize("estimator", ["plain", "dreg"])
def test_the_expected_gradient_is_the_gradient_of_l_k(estimator):
    model, rng, k = off_posterior_model(), np.random.default_rng(1), 5
    # ours: 40 batch means over 1,500 draws each; theirs: finite differences of NumPy's L_k
    ours = tf_gradient_draws(model, np.repeat(X, 500, axis=0), k, estimator, calls=40)
    draws = rng.normal(size=(6000, k, len(X), LATENT))
    theirs = numpy_gradient_draws(model.parameters(), k, draws)
    elbo = numpy_gradient_draws(model.parameters(), 1, draws[:, :1])  # L_1's, same draws
    resolves_k = False
    for name, reference in theirs.items():
        (mean, se), (their_mean, their_se) = mean_and_se(ours[name]), mean_and_se(reference)
        np.testing.assert_array_less(np.abs(mean - their_mean), 4 * np.hypot(se, their_se))
        difference, difference_se = mean_and_se(reference - elbo[name])
        resolves_k |= bool(np.any(np.abs(difference) > 4 * np.hypot(difference_se, se)))
    # the comparison has the power to tell L_5's gradient from the ELBO's
    assert resolves_k


def paired_gradient_draws(model, k, draws):
    """``draws`` gradients of iwae_loss on X with each estimator from the same noise:
    {estimator: (encoder (draws, size), decoder (draws, size))}."""

    @tf.function
    def gradient(estimator):
        with tf.GradientTape() as tape:
            loss = vt.iwae_loss(model, X, k, estimator=estimator)
        weights = model.encoder.trainable_variables + model.decoder.trainable_variables
        return tape.gradient(loss, weights)

    found = {"plain": ([], []), "dreg": ([], [])}
    encoder_size = len(model.encoder.trainable_variables)
    for _ in range(draws):
        state = model.seed_generator.state.numpy()
        for estimator, (encoder, decoder) in found.items():
            model.seed_generator.state.assign(state)
            flat = [g.numpy().ravel() for g in gradient(estimator)]
            encoder.append(np.concatenate(flat[:encoder_size]))
            decoder.append(np.concatenate(flat[encoder_size:]))
    return {e: tuple(np.stack(part) for part in parts) for e, parts in found.items()}


def test_dreg_has_the_plain_expectation_and_less_variance_at_k_50():
    model = off_posterior_model()
    draws = paired_gradient_draws(model, k=50, draws=400)
    (plain_encoder, plain_decoder), (dreg_encoder, dreg_decoder) = draws["plain"], draws["dreg"]
    # the decoder's gradient is IWAE's in both, draw for draw
    np.testing.assert_allclose(dreg_decoder, plain_decoder, rtol=1e-4, atol=1e-5)
    # the encoder's has the same expectation: the paired difference is zero within 4 SE
    difference, se = mean_and_se(dreg_encoder - plain_encoder)
    np.testing.assert_array_less(np.abs(difference), 4 * se)

    # and less variance: the log ratio of the total variances in 20 groups of 20 draws
    def total_variance(draws):
        return draws.var(axis=0, ddof=1).sum()

    groups = zip(np.split(plain_encoder, 20), np.split(dreg_encoder, 20), strict=True)
    log_ratios = np.array([np.log(total_variance(p) / total_variance(d)) for p, d in groups])
    ratio, ratio_se = mean_and_se(log_ratios)
    assert ratio > 4 * ratio_se, f"log variance ratio {ratio:.2f} +- {ratio_se:.2f}"
    plain, dreg = (vt.gradient_snr(model, X, 50, estimator=e, repeats=400) for e in draws)
    assert dreg["encoder"] > plain["encoder"]


def test_gradient_snr_is_mean_over_std_per_weight_and_keeps_the_sampling_state():
    model = off_posterior_model()
    state = model.seed_generator.state.numpy()
    snr = vt.gradient_snr(model, X, 5, repeats=30)
    np.testing.assert_array_equal(model.seed_generator.state.numpy(), state)
    assert set(snr) >= {"encoder", "decoder", "encoder_per_weight", "decoder_per_weight"}
    names = [[v.name for v in part.trainable_variables] for part in (model.encoder, model.decoder)]
    draws = tf_gradient_draws(model, X, 5, "plain", calls=30)  # from the same state
    for part, part_names in zip(("encoder", "decoder"), names, strict=True):
        g = np.concatenate([draws[name] for name in part_names], axis=1)
        expected = np.abs(g.mean(axis=0)) / g.std(axis=0, ddof=1)
        np.testing.assert_allclose(snr[f"{part}_per_weight"], expected, rtol=1e-4)
        assert snr[part] == pytest.approx(np.median(expected), rel=1e-4)


# --- k = 1 and the ELBO step ----------------------------------------------------------------


def binarized_batch(n=64):
    images = vt.load_dataset("mnist", download=False).train_images[:n]
    return next(iter(vt.make_batches(images, batch_size=n, seed=0))).numpy().reshape(n, 784)


def test_with_k_1_the_step_reports_the_elbo_steps_terms_for_the_same_noise():
    x = binarized_batch()
    models = [small_vae(), small_vae()]  # the same initial weights
    models[0](x)
    models[1](x)
    state = models[0].seed_generator.state.numpy()
    models[1].seed_generator.state.assign(state)
    mu, log_var = (t.numpy().astype("float64") for t in models[0].encode(x))
    z = mu + np.exp(log_var / 2) * keras_draws(state, mu.shape)
    sgd = [keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1)]
    elbo = [float(t) for t in train_step_terms(models[0], sgd[0], x)]
    iwae = [float(t) for t in vt.iwae_step_terms(models[1], sgd[1], x, k=1)]
    # reconstruction and KL: the ELBO step's, for the same z
    assert iwae[1:] == pytest.approx(elbo[1:], rel=1e-5)
    # the loss, -log w = -log p(x|z) + log q(z|x) - log p(z): the KL sampled at that z
    log_q = -0.5 * np.sum(np.log(2 * np.pi) + log_var + (z - mu) ** 2 / np.exp(log_var), axis=1)
    log_p = -0.5 * np.sum(np.log(2 * np.pi) + z**2, axis=1)
    assert iwae[0] == pytest.approx(elbo[1] + np.mean(log_q - log_p), rel=1e-5)
    # so the decoder's update is the ELBO step's; the encoder's differs (a sampled KL)
    for a, b in zip(models[0].decoder.weights, models[1].decoder.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert not all(
        np.allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
        for a, b in zip(models[0].encoder.weights, models[1].encoder.weights, strict=True)
    )


def test_with_k_1_the_loss_is_the_elbo_steps_loss_in_expectation():
    model = small_vae()
    surrogate, reconstruction, kl = iwae_terms(model, np.repeat(binarized_batch(), 50, axis=0), 1)
    difference, se = mean_and_se((surrogate - (reconstruction + kl)).numpy().astype("float64"))
    assert abs(difference) < 4 * se


# --- fit, resume, refusals ------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return vt.load_dataset("mnist", download=False).subset(256, 128)  # the bundled sample


def losses(history):
    return [(h["train_loss"], h["reconstruction"], h["kl"], h["test_elbo"]) for h in history]


def iwae_fit(data, model=None, estimator="plain", epochs=2, **kwargs):
    config = vt.TrainingConfig(
        epochs=epochs, batch_size=64, objective="iwae", k=5, estimator=estimator
    )
    model = small_vae() if model is None else model
    return vt.fit(model, data.train_images, data.test_images, config, progress=False, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["plain", "dreg"])
def test_fit_trains_iwae_alike_with_the_plain_and_the_fast_runner(digits, estimator):
    plain = iwae_fit(digits, estimator=estimator, fast=False)
    graph = iwae_fit(digits, estimator=estimator, jit_compile=False)
    np.testing.assert_allclose(losses(graph), losses(plain), rtol=1e-5)
    assert all(h["train_loss"] != pytest.approx(h["reconstruction"] + h["kl"]) for h in plain)
    # fast=True's default for the MLP: XLA, whose normal numbers differ from TensorFlow's CPU
    # kernel's for the same seed (StatelessRandomNormalV2, the same key and counter): the same
    # training with other noise, so it agrees with the plain loop to its noise, not to rounding
    xla = iwae_fit(digits, estimator=estimator)
    np.testing.assert_allclose(losses(xla), losses(plain), rtol=1e-2, atol=1.0)  # KL: < 1 nat
    assert xla[1]["train_loss"] < xla[0]["train_loss"]


@pytest.mark.slow
def test_fit_trains_a_conv_vae_on_iwae_alike_with_both_runners(digits):
    def run(**kwargs):
        keras.utils.set_random_seed(0)
        return iwae_fit(digits, vt.ConvVAE(2), estimator="dreg", epochs=1, **kwargs)

    np.testing.assert_allclose(losses(run()), losses(run(fast=False)), rtol=1e-5)


@pytest.mark.slow
def test_an_iwae_run_resumes_from_its_checkpoint(digits, tmp_path):
    straight = iwae_fit(digits)
    first = iwae_fit(digits, epochs=1, checkpoint_dir=tmp_path)
    resumed = iwae_fit(digits, small_vae(seed=9), checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed] == [1, 2] and resumed[0] == first[0]
    np.testing.assert_allclose(losses(resumed), losses(straight), rtol=1e-5)


def test_each_objective_and_k_has_one_step_so_the_compiled_cache_holds():
    model = small_vae()
    config = vt.TrainingConfig(objective="iwae", k=5)
    assert step_terms_for(model, config) is step_terms_for(model, vt.TrainingConfig(**vars(config)))
    assert step_terms_for(model, config) is not step_terms_for(
        model, vt.TrainingConfig(objective="iwae", k=6)
    )
    assert step_terms_for(model, vt.TrainingConfig()) is train_step_terms


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"k": 5}, ValueError, r"k=5 sets the importance-weighted bound: add objective='iwae'"),
        ({"estimator": "dreg"}, ValueError, r"estimator='dreg' sets .*add objective='iwae'"),
        ({"objective": "iwae", "beta": 2.0}, ValueError, r"no KL term.*use beta=1\.0"),
        ({"objective": "iwae", "kl_warmup_epochs": 5}, ValueError, r"use kl_warmup_epochs=0"),
        ({"objective": "iwae", "free_bits": 0.5}, ValueError, r"use free_bits=0\.0"),
        ({"objective": "iwae", "k": 0}, ValueError, r"k must be"),
        ({"objective": "iwae", "k": 2.5}, TypeError, r"k must be an int"),
        ({"objective": "vae"}, ValueError, r"objective='vae' is not a valid choice.*'iwae'"),
        ({"objective": "iwae", "estimator": "rws"}, ValueError, r"'rws' is not a valid.*'dreg'"),
    ],
)
def test_bad_combinations_are_refused_with_the_fix(settings, error, match):
    with pytest.raises(error, match=match):
        vt.TrainingConfig(**settings)


def test_what_iwae_does_not_train_is_refused_with_the_fix(digits):
    config = vt.TrainingConfig(objective="iwae", k=5)
    conditional = vt.ConditionalVAE(latent_dim=2, intermediate_dim=16)
    train = (digits.train_images, digits.train_labels)
    with pytest.raises(ValueError, match="train the ConditionalVAE with objective='elbo'"):
        vt.fit(conditional, train, config=config, progress=False)
    with pytest.raises(ValueError, match="closed-form ELBO.*without a strategy"):
        vt.fit(small_vae(), digits.train_images, config=config, progress=False,
               strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))  # fmt: skip
    with pytest.raises(ValueError, match="no KL weight: use beta=1.0"):
        vt.iwae_step_terms(small_vae(), keras.optimizers.SGD(), binarized_batch(), 2.0, k=5)
    with pytest.raises(ValueError, match="k must be an int.*number of importance samples"):
        vt.iwae_loss(small_vae(), binarized_batch(), 0)


# --- the command line -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_cli_trains_iwae_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    # The first run in a process of its own, as a learner starts it; the rerun in this one.
    out = tmp_path / "run"
    args = ["train", "--objective", "iwae", "--k", "5", "--epochs", "1", "--limit-train",
            "256", "--limit-test", "128", "--no-figures", "--out", out]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["objective"], training["k"], training["estimator"]) == ("iwae", 5, "plain")
    epoch_1 = json.loads((out / "metrics.json").read_text())["epochs"]
    args[args.index("--epochs") + 1] = "2"
    second = run_cli_here(monkeypatch, capsys, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resumed from" in second.stdout and "changed settings" not in second.stdout
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[0] == epoch_1[0]


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--k", "5"], "--k=5 sets the importance-weighted bound: add --objective='iwae'"),
        (["--objective", "iwae", "--beta", "2"], "use --beta=1.0"),
        (["--objective", "iwae", "--conditional"], "train the ConditionalVAE with"),
    ],
)
def test_cli_refuses_bad_combinations_in_one_line(flags, match, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
    args = ["train", "--epochs", "1", "--limit-train", "64", "--limit-test", "64",
            "--no-figures", "--out", tmp_path / "run", *flags]  # fmt: skip
    assert match in one_cli_error_line(args, capsys)


@pytest.mark.slow
def test_a_config_json_from_before_iwae_still_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "old"
    args = ["train", "--epochs", "1", "--intermediate-dim", "32", "--limit-train", "128",
            "--limit-test", "64", "--no-figures", "--out", out]  # fmt: skip
    assert run_cli_here(monkeypatch, capsys, *args).returncode == 0
    config = json.loads((out / "config.json").read_text())
    for key in ("objective", "k", "estimator"):  # what an older version wrote
        del config["training"][key]
    (out / "config.json").write_text(json.dumps(config))
    args[args.index("--epochs") + 1] = "2"
    resumed = run_cli_here(monkeypatch, capsys, *args)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resumed from" in resumed.stdout and "changed settings" not in resumed.stdout
    assert json.loads((out / "config.json").read_text())["training"]["objective"] == "elbo"
