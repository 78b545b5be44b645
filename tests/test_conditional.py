"""The conditional VAE: shapes, label checks, its ELBO against numerical integration, fit's
batches carrying the right labels, resuming, and the CLI's --conditional end to end."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial import (
    VAE,
    ConditionalVAE,
    TrainingConfig,
    cli,
    evaluate_elbo,
    fit,
    iwae_bound,
    make_batches,
    plot_class_samples,
    restore_run,
)
from vae_tutorial.batching import epoch_order


def images(n, seed=0):
    """Blobby uint8 images: random, with enough structure to learn something."""
    rng = np.random.default_rng(seed)
    means = rng.integers(0, 256, size=(4, 28, 28))
    noise = rng.integers(-40, 41, size=(n, 28, 28))
    return np.clip(means[rng.integers(0, 4, size=n)] + noise, 0, 255).astype(np.uint8)


TRAIN, TEST = images(256), images(64, seed=1)
TRAIN_LABELS = np.random.default_rng(2).integers(0, 10, 256).astype(np.uint8)
TEST_LABELS = np.random.default_rng(3).integers(0, 10, 64).astype(np.uint8)


def small_cvae(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return ConditionalVAE(latent_dim=2, intermediate_dim=16, **kwargs)


def run(model=None, epochs=1, seed=0, **kwargs):
    kwargs.setdefault("progress", False)
    return fit(
        small_cvae() if model is None else model,
        (TRAIN, TRAIN_LABELS),
        (TEST, TEST_LABELS),
        TrainingConfig(epochs=epochs, batch_size=64, seed=seed),
        **kwargs,
    )


# -- the model ------------------------------------------------------------------------------


def test_shapes_of_call_encode_decode_and_sample():
    model = small_cvae()
    x = np.random.default_rng(0).random((5, 784)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 9])
    logits, mu, log_var = model((x, y))
    assert (logits.shape, mu.shape, log_var.shape) == ((5, 784), (5, 2), (5, 2))
    assert model.encode(x, y)[0].shape == (5, 2)
    assert model.decode(np.zeros((5, 2)), y).shape == (5, 784)
    assert model.reconstruct(x, y).shape == (5, 784)
    assert model.sample(4, 7).shape == (4, 784)  # one class for all
    assert model.sample(3, [1, 2, 3]).shape == (3, 784)  # one class each


def test_decoder_and_encoder_depend_on_the_label():
    model = small_cvae()
    z = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
    under = [model.decode(z, np.full(10, c)).numpy() for c in range(10)]
    for c in range(1, 10):  # same z, another class: another image
        assert np.abs(under[c] - under[0]).max() > 1e-3, c
    x = np.random.default_rng(1).random((10, 784)).astype(np.float32)
    mu_0 = model.encode(x, np.zeros(10, int))[0].numpy()
    mu_1 = model.encode(x, np.ones(10, int))[0].numpy()
    assert np.abs(mu_0 - mu_1).max() > 1e-3


def test_config_round_trip():
    model = small_cvae(num_classes=3, input_dim=6)
    again = ConditionalVAE.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    assert [v.shape for v in again.weights] == [v.shape for v in model.weights]


@pytest.mark.parametrize(
    "batch, error, words",
    [
        (np.zeros((2, 784)), TypeError, "pair (x, labels)"),
        ((np.zeros((2, 784)), np.array([0, 1, 2])), ValueError, "3 entries for a batch of 2"),
        ((np.zeros((2, 784)), np.array([0, 10])), ValueError, "0..9"),
        ((np.zeros((2, 784)), np.array([0, -1])), ValueError, ">= 0"),
        ((np.zeros((2, 784)), np.array([0.0, 1.0])), TypeError, "astype(int)"),
        ((np.zeros((2, 784)), np.eye(10)[:2].astype(int)), ValueError, "np.argmax"),
        ((np.zeros((2, 28, 28)), np.array([0, 1])), ValueError, "reshape"),
    ],
)
def test_bad_batches_are_refused_with_the_fix(batch, error, words):
    with pytest.raises(error) as caught:
        small_cvae()(batch)
    assert words in str(caught.value)


def test_fit_refuses_missing_wrong_or_unwanted_labels():
    one_epoch = TrainingConfig(epochs=1)
    with pytest.raises(ValueError, match=r"pass train as the pair \(images, labels\)"):
        fit(small_cvae(), TRAIN, config=one_epoch, progress=False)
    with pytest.raises(ValueError, match=r"pass test as the pair \(images, labels\)"):
        fit(small_cvae(), (TRAIN, TRAIN_LABELS), TEST, config=one_epoch, progress=False)
    with pytest.raises(ValueError, match="train's labels has 10 labels for 256 images"):
        fit(small_cvae(), (TRAIN, TRAIN_LABELS[:10]), config=one_epoch, progress=False)
    with pytest.raises(ValueError, match="num_classes=13"):
        fit(small_cvae(), (TRAIN, TRAIN_LABELS + 3), config=one_epoch, progress=False)
    with pytest.raises(ValueError, match="VAE does not use labels"):
        fit(VAE(latent_dim=2, intermediate_dim=8), (TRAIN, TRAIN_LABELS), config=one_epoch)


def test_plot_class_samples_needs_a_conditional_model():
    figure = plot_class_samples(small_cvae(), n=3, seed=0)
    assert len(figure.axes) == 1
    with pytest.raises(ValueError, match="plot_samples"):
        plot_class_samples(VAE(latent_dim=2, intermediate_dim=8))


# -- the conditional ELBO against numerical integration over a 1-d latent --------------------


def _dense(layer, h):
    kernel, bias = (w.numpy().astype(np.float64) for w in layer.weights)
    return h @ kernel + bias


def _hidden(sequential, h):
    for layer in sequential.layers:
        h = np.maximum(_dense(layer, h), 0.0)  # ReLU
    return h


def _numpy_model(model):
    """q's (mu, log_var) and p(x | z, y)'s logits, recomputed in numpy from the weights,
    with the one-hot label y concatenated to each network's input."""
    enc, dec = model.encoder, model.decoder

    def encode(x, y):
        h = _hidden(enc.hidden, np.concatenate([x, y], axis=-1))
        return _dense(enc.mu, h), _dense(enc.log_var, h)

    def logits(z, y):
        return _dense(dec.output_layer, _hidden(dec.hidden, np.concatenate([z, y], axis=-1)))

    return encode, logits


def test_conditional_elbo_and_iwae_match_numerical_integration():
    keras.utils.set_random_seed(3)
    model = ConditionalVAE(latent_dim=1, intermediate_dim=8, input_dim=6, num_classes=3)
    x = np.array([[1, 0, 1, 1, 0, 0]], np.float32)
    label = 2
    y = np.eye(3)[[label]]
    encode, decoder_logits = _numpy_model(model)
    mu, log_var = (v.item() for v in encode(x.astype(np.float64), y))
    np.testing.assert_allclose(model.encode(x, [label])[0].numpy().item(), mu, rtol=1e-5)

    # log p(x | z, y) on a fine grid of z, from the numpy decoder
    z = np.linspace(-12, 12, 24001)[:, None]
    logit = decoder_logits(z, np.repeat(y, len(z), axis=0))
    log_px_z = (x * logit - np.logaddexp(0, logit)).sum(axis=1)
    log_prior = -0.5 * (z[:, 0] ** 2 + np.log(2 * np.pi))
    q = np.exp(-0.5 * ((z[:, 0] - mu) ** 2 / np.exp(log_var) + log_var + np.log(2 * np.pi)))
    dz = z[1, 0] - z[0, 0]
    # exact log p(x | y) = log integral p(x | z, y) p(z) dz
    exact = np.log(np.sum(np.exp(log_px_z + log_prior)) * dz)
    # the ELBO = E_q[log p(x | z, y)] - KL(q || p), both by quadrature
    kl = np.sum(q * (np.log(np.maximum(q, 1e-300)) - log_prior)) * dz
    elbo = np.sum(q * log_px_z) * dz - kl
    assert elbo < exact

    # the model's single-sample ELBOs, averaged over many draws
    n = 20000
    logits, mu_t, log_var_t = model((np.repeat(x, n, axis=0), np.full(n, label)))
    logits = logits.numpy().astype(np.float64)
    sampled = (x * logits - np.logaddexp(0, logits)).sum(axis=1) - 0.5 * (
        np.exp(log_var_t.numpy()) + mu_t.numpy() ** 2 - 1 - log_var_t.numpy()
    ).sum(axis=1)
    standard_error = sampled.std() / np.sqrt(n)
    assert abs(sampled.mean() - elbo) < 4 * standard_error + 1e-4, (sampled.mean(), elbo)

    # the importance-weighted bound with k = 2000 (50 estimates): log p(x | y), not the ELBO
    bounds = iwae_bound(model, (np.repeat(x, 50, axis=0), np.full(50, label)), 2000, seed=0)
    bound, standard_error = bounds.numpy().mean(), bounds.numpy().std() / np.sqrt(50)
    assert abs(bound - exact) < 4 * standard_error + 0.01, (bound, standard_error, exact)
    assert bound > elbo + 0.1, (bound, elbo)  # exact - ELBO is 0.18 nats for this model


def test_evaluate_elbo_on_labelled_batches_scores_under_each_image_label():
    model = small_cvae()
    batches = make_batches(TEST, batch_size=32, shuffle=False, labels=TEST_LABELS)
    scored = evaluate_elbo(model, batches)
    assert scored["images"] == len(TEST)
    shifted = make_batches(TEST, batch_size=32, shuffle=False, labels=(TEST_LABELS + 1) % 10)
    assert evaluate_elbo(model, shifted)["elbo"] != scored["elbo"]


# -- batches and fit -------------------------------------------------------------------------


def test_make_batches_labels_follow_their_images():
    n = 300
    index_images = np.zeros((n, 28, 28), np.uint8)
    index_images[:, 0, 0] = np.arange(n) % 256  # each image names its index in two pixels
    index_images[:, 0, 1] = np.arange(n) // 256
    labels = np.random.default_rng(0).integers(0, 10, n)
    seen = []
    for x, y in make_batches(
        index_images, batch_size=64, binarize="none", seed=4, epoch=1, labels=labels
    ):
        pixels = np.rint(x.numpy()[:, 0, :2] * 255).astype(int)
        index = pixels[:, 0] + 256 * pixels[:, 1]
        np.testing.assert_array_equal(y.numpy(), labels[index])
        seen.append(index)
    np.testing.assert_array_equal(np.concatenate(seen), epoch_order(n, 4, 1))


class LabelRecorder(ConditionalVAE):
    """Sums, in a variable, one-hot(label) x image over every training batch, by step."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.step = self.add_weight(shape=(), initializer="zeros", trainable=False, name="s")
        self.seen = self.add_weight(
            shape=(10, 784), initializer="zeros", trainable=False, name="xy"
        )

    def call(self, batch, training=False):
        if training:
            x, labels = batch
            self.step.assign_add(1.0)
            outer = tf.matmul(tf.one_hot(labels, 10), x, transpose_a=True)
            self.seen.assign_add(outer * self.step)
        return super().call(batch)


@pytest.mark.slow
@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_trains_on_make_batches_batches_with_their_labels(jit_compile):
    keras.utils.set_random_seed(0)
    model = LabelRecorder(latent_dim=2, intermediate_dim=16)
    train, labels = TRAIN[:200], TRAIN_LABELS[:200]  # 3 batches of 64 and one of 8
    fit(
        model,
        (train, labels),
        config=TrainingConfig(epochs=2, batch_size=64, seed=5),
        progress=False,
        jit_compile=jit_compile,
    )
    expected, step = np.zeros((10, 784)), 0
    for epoch in (0, 1):
        for x, y in make_batches(train, batch_size=64, seed=5, epoch=epoch, labels=labels):
            step += 1
            expected += np.eye(10)[y.numpy()].T @ x.numpy().reshape(-1, 784) * step
    assert int(model.step.numpy()) == step == 8
    np.testing.assert_array_equal(model.seen.numpy(), expected)  # 0/1 pixels: exact sums


@pytest.mark.slow
def test_fit_learns_and_resumes_from_its_checkpoint(tmp_path):
    straight = run(epochs=2, seed=3)
    assert straight[1]["train_loss"] < straight[0]["train_loss"]
    assert all(np.isfinite(h["test_elbo"]) for h in straight)
    run(epochs=1, seed=3, checkpoint_dir=tmp_path)
    resumed = run(small_cvae(seed=9), epochs=2, seed=3, checkpoint_dir=tmp_path)
    assert [h["epoch"] for h in resumed] == [1, 2]
    for a, b in zip(resumed, straight, strict=True):
        np.testing.assert_allclose(
            [a["train_loss"], a["test_elbo"]], [b["train_loss"], b["test_elbo"]], rtol=1e-5
        )
    restored = small_cvae(seed=11)
    assert len(restore_run(restored, tmp_path)) == 2
    with pytest.raises(ValueError, match="different model"):
        restore_run(VAE(latent_dim=2, intermediate_dim=16), tmp_path)


# -- the command line --------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_trains_and_evaluates_a_conditional_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
    out = tmp_path / "run"
    tiny = ["--epochs", "1", "--intermediate-dim", "16", "--limit-train", "300",
            "--limit-test", "100", "--out", str(out)]  # fmt: skip
    assert cli.main(["train", "--conditional", *tiny]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["kind"] == "conditional"
    assert (out / "samples.png").is_file() and (out / "loss_curves.png").is_file()
    assert cli.main(["evaluate", "--out", str(out), "--k", "5"]) == 0
    assert "log p(x | y)" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iwae"]["log_likelihood"] > metrics["iwae"]["elbo"] - 1.0
    # the same directory without --conditional is another model
    assert cli.main(["train", *tiny]) == 1
    assert "model.kind 'conditional' -> 'mlp'" in capsys.readouterr().err
    assert cli.main(["train", "--conditional", "--conv", "--out", str(tmp_path / "x")]) == 2
    assert "cannot be combined with --conv" in capsys.readouterr().err
