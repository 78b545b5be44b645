"""The VQ-VAE against independent references: brute-force nearest codes, gradients by hand
and through a separate tape, the EMA formula in NumPy, code restarts, usage counted directly,
and its training by fit (both runners, resume) and its bound."""

import json
import math
from collections import Counter

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TEST, TRAIN, one_cli_error_line, run_cli, run_cli_here

from vae_tutorial import ModelConfig, TrainingConfig, fit
from vae_tutorial.batching import held_out_batches
from vae_tutorial.quantizer import VectorQuantizer, codebook_loss, commitment_loss, nearest_codes
from vae_tutorial.step import prepare_for_training
from vae_tutorial.vqvae import VQVAE, codebook_usage, evaluate_vq_elbo, vq_step_terms


def quantizer(num_codes, code_dim, codebook=None, **kwargs):
    layer = VectorQuantizer(num_codes, code_dim, **kwargs)
    layer.build((None, code_dim))
    if codebook is not None:
        layer.codebook.assign(np.asarray(codebook, np.float32))
    return layer


def brute_force_codes(z, codebook):
    """argmin_k ||z - e_k||^2 by the difference of every pair, in float64."""
    z, codebook = np.asarray(z, np.float64), np.asarray(codebook, np.float64)
    distances = ((z[..., None, :] - codebook) ** 2).sum(axis=-1)
    return distances.argmin(axis=-1)


def test_the_nearest_code_is_the_brute_force_argmin():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 7, 7, 4)).astype(np.float32)
    codebook = rng.normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(nearest_codes(z, codebook), brute_force_codes(z, codebook))
    layer = quantizer(16, 4, codebook)
    z_q, codes = layer(z)
    np.testing.assert_array_equal(codes, brute_force_codes(z, codebook))
    # z_e + (z_q - z_e): z_q up to float rounding
    np.testing.assert_allclose(z_q, codebook[brute_force_codes(z, codebook)], atol=1e-6)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(0)
    model = VQVAE(num_codes=8, code_dim=3, seed=0)
    x = tf.cast(tf.random.uniform([4, 28, 28, 1], seed=1) > 0.5, tf.float32)
    model(x)
    return model, x


def test_the_encoder_gets_the_decoders_gradient_at_the_quantized_point(small_model):
    model, x = small_model
    z_e = model.encoder(x)
    with tf.GradientTape() as tape:
        tape.watch(z_e)
        z_q, _ = model.quantizer(z_e)
        through = -tf.reduce_sum(model.likelihood.log_prob(x, model.decoder(z_q)))
    at_encoder = tape.gradient(through, z_e)

    # The decoder's gradient at the codebook vectors themselves, with no straight-through.
    codes = brute_force_codes(z_e.numpy(), model.quantizer.codebook.numpy())
    z_q = tf.constant(model.quantizer.codebook.numpy()[codes])
    with tf.GradientTape() as tape:
        tape.watch(z_q)
        direct = -tf.reduce_sum(model.likelihood.log_prob(x, model.decoder(z_q)))
    at_quantized = tape.gradient(direct, z_q)
    assert float(tf.reduce_max(tf.abs(at_quantized))) > 0
    np.testing.assert_allclose(at_encoder, at_quantized, rtol=1e-5, atol=1e-7)


def test_the_codebook_loss_moves_the_codebook_and_the_commitment_loss_the_encoder(small_model):
    model, x = small_model
    encoder, codebook = model.encoder.trainable_variables, model.quantizer.codebook
    with tf.GradientTape(persistent=True) as tape:
        z_e = model.encoder(x)
        codes = nearest_codes(z_e, codebook)
        z_q = model.quantizer.lookup(codes)
        to_codebook = tf.reduce_sum(codebook_loss(z_e, z_q))
        to_encoder = tf.reduce_sum(commitment_loss(z_e, z_q))
    assert all(g is None for g in tape.gradient(to_codebook, encoder))
    assert tape.gradient(to_encoder, codebook) is None

    # By hand: d/de_k sum ||z - e_k||^2 = sum over the z given code k of 2 (e_k - z), and
    # d/dz ||z - e||^2 = 2 (z - e).
    z, e, k = z_e.numpy().reshape(-1, 3), codebook.numpy(), codes.numpy().ravel()
    by_hand = np.zeros_like(e)
    np.add.at(by_hand, k, 2 * (e[k] - z))
    at_codebook = tf.convert_to_tensor(tape.gradient(to_codebook, codebook))
    np.testing.assert_allclose(at_codebook, by_hand, rtol=1e-4, atol=1e-6)
    at_z = tape.gradient(to_encoder, z_e).numpy().reshape(-1, 3)
    np.testing.assert_allclose(at_z, 2 * (z - e[k]), rtol=1e-4, atol=1e-6)
    assert all(g is not None for g in tape.gradient(to_encoder, encoder))


def test_the_ema_update_is_the_formula():
    rng = np.random.default_rng(1)
    k, d, decay, eps = 4, 2, 0.9, 1e-5
    codebook = rng.normal(size=(k, d))
    layer = quantizer(k, d, codebook, ema=True, decay=decay, epsilon=eps)
    counts, sums = rng.uniform(0.5, 3, size=k), rng.normal(size=(k, d))
    layer.ema_counts.assign(counts.astype(np.float32))
    layer.ema_sums.assign(sums.astype(np.float32))
    z = rng.normal(size=(1, 2, 3, d)).astype(np.float32)
    _, codes = layer(z)
    layer.update(z, codes)

    flat, assigned = z.reshape(-1, d).astype(np.float64), brute_force_codes(z, codebook).ravel()
    n = np.array([np.sum(assigned == i) for i in range(k)])
    s = np.array([flat[assigned == i].sum(axis=0) for i in range(k)])
    new_counts = decay * counts + (1 - decay) * n
    new_sums = decay * sums + (1 - decay) * s
    total = new_counts.sum()
    smoothed = (new_counts + eps) / (total + k * eps) * total
    np.testing.assert_allclose(layer.ema_counts.numpy(), new_counts, rtol=1e-6)
    np.testing.assert_allclose(layer.ema_sums.numpy(), new_sums, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.codebook.numpy(), new_sums / smoothed[:, None], rtol=1e-5)
    assert not layer.codebook.trainable


def test_codes_unused_for_restart_after_steps_move_onto_encoder_outputs():
    used = [[0.0, 0.0], [1.0, 1.0]]
    far = [[50.0, 50.0], [60.0, 60.0], [70.0, 70.0], [80.0, 80.0]]
    layer = quantizer(6, 2, used + far, restart_after=2)
    z = np.random.default_rng(2).uniform(0, 1, size=(3, 2, 2, 2)).astype(np.float32)
    seed = keras.random.SeedGenerator(0)
    _, codes = layer(z)
    assert set(codes.numpy().ravel()) == {0, 1}
    layer.update(z, codes, seed=seed)  # one step unused: kept
    np.testing.assert_array_equal(layer.codebook.numpy(), used + far)
    np.testing.assert_array_equal(layer.unused_steps.numpy(), [0, 0, 1, 1, 1, 1])
    layer.update(z, codes, seed=seed)  # two steps unused: restarted
    after = layer.codebook.numpy()
    np.testing.assert_array_equal(after[:2], used)
    rows = z.reshape(-1, 2)
    for vector in after[2:]:
        assert np.any(np.all(rows == vector, axis=1)), vector
    np.testing.assert_array_equal(layer.unused_steps.numpy(), np.zeros(6))


def test_codebook_usage_is_the_fraction_used_and_the_perplexity():
    assert codebook_usage(np.arange(16).repeat(3), 16) == (1.0, pytest.approx(16.0))
    assert codebook_usage(np.full((4, 7, 7), 5), 16) == (1 / 16, pytest.approx(1.0))
    codes = np.random.default_rng(3).integers(0, 10, size=(20, 7, 7))
    counts = Counter(codes.ravel().tolist())
    entropy = -sum(c / codes.size * math.log(c / codes.size) for c in counts.values())
    fraction, perplexity = codebook_usage(codes, 12)
    assert fraction == len(counts) / 12
    assert perplexity == pytest.approx(math.exp(entropy), rel=1e-12)
    with pytest.raises(ValueError, match="num_codes"):
        codebook_usage(codes, 5)
    with pytest.raises(TypeError, match="ints"):
        codebook_usage(np.array([0.5]), 4)
    with pytest.raises(ValueError, match="empty"):
        codebook_usage(np.array([], int), 4)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_codes": 1}, ValueError, "num_codes"),
        ({"code_dim": 2.5}, TypeError, "code_dim"),
        ({"decay": 1.0}, ValueError, "decay"),
        ({"ema": "yes"}, TypeError, "ema"),
        ({"restart_after": 0}, ValueError, "restart_after"),
    ],
)
def test_bad_settings_name_the_setting(kwargs, error, match):
    settings = {"num_codes": 8, "code_dim": 2, **kwargs}
    with pytest.raises(error, match=match):
        VectorQuantizer(settings.pop("num_codes"), settings.pop("code_dim"), **settings)


def test_the_step_returns_the_reconstruction_and_the_quantizer_loss(small_model):
    keras.utils.set_random_seed(0)
    model = VQVAE(num_codes=8, code_dim=3)
    x = small_model[1]
    logits, z_e, codes = model(x)
    expected_recon = -np.mean(model.likelihood.log_prob(x, logits))
    e = model.quantizer.codebook.numpy()[codes.numpy()]
    squares = ((z_e.numpy() - e) ** 2).reshape(4, -1).sum(axis=1)
    expected_vq = np.mean((1 + 0.25) * squares)
    loss, reconstruction, vq = vq_step_terms(model, keras.optimizers.Adam(1e-3), x)
    np.testing.assert_allclose(reconstruction, expected_recon, rtol=1e-5)
    np.testing.assert_allclose(vq, expected_vq, rtol=1e-5)
    np.testing.assert_allclose(loss, expected_recon + expected_vq, rtol=1e-5)


def test_a_model_config_builds_a_vqvae_and_reads_it_back():
    config = ModelConfig(kind="vqvae", latent_dim=8, num_codes=32, ema=True)
    model = config.build(seed=3)
    assert type(model) is VQVAE and model.num_codes == 32 and model.quantizer.ema
    assert model.seed == 3 and ModelConfig.of(model) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    assert ModelConfig(kind="vqvae").num_codes == 64 and ModelConfig(kind="vqvae").ema is False
    assert ModelConfig.of(VQVAE(restart_after=10)) is None  # a setting it does not hold
    with pytest.raises(ValueError, match="num_codes is the VQ-VAE's"):
        ModelConfig(num_codes=16)
    with pytest.raises(ValueError, match="num_codes must be an int >= 2"):
        ModelConfig(kind="vqvae", num_codes=1)
    with pytest.raises(ValueError, match="does not apply to kind='vqvae'"):
        ModelConfig(kind="vqvae", intermediate_dim=[64])


def vq_losses(history):
    return [(h["train_loss"], h["reconstruction"], h["kl"], h["test_elbo"]) for h in history]


def run(model_seed=0, **kwargs):
    keras.utils.set_random_seed(model_seed)
    model = VQVAE(num_codes=16, code_dim=4, seed=0, ema=kwargs.pop("ema", False))
    config = TrainingConfig(epochs=kwargs.pop("epochs", 2), batch_size=64)
    return fit(model, TRAIN[:256], TEST, config, progress=False, **kwargs), model


@pytest.mark.slow
@pytest.mark.parametrize("ema", [False, True])
def test_fit_trains_a_vqvae_the_same_with_both_runners(ema):
    plain, _ = run(fast=False, ema=ema)
    fast, model = run(ema=ema)
    np.testing.assert_allclose(vq_losses(fast), vq_losses(plain), rtol=1e-5)
    if ema:  # under XLA too (compiling takes a minute): the same steps up to float rounding
        xla, _ = run(ema=ema, jit_compile=True)
        np.testing.assert_allclose(vq_losses(xla), vq_losses(plain), rtol=2e-3, atol=0.05)
    assert plain[1]["train_loss"] < plain[0]["train_loss"]
    for h in plain:
        assert h["train_loss"] == pytest.approx(h["reconstruction"] + h["kl"], rel=1e-5)
    assert ModelConfig.of(model) == ModelConfig(kind="vqvae", latent_dim=4, num_codes=16, ema=ema)


@pytest.mark.slow
def test_fit_resumes_a_vqvae_from_its_checkpoint(tmp_path):
    straight, _ = run(epochs=2)
    run(epochs=1, checkpoint_dir=tmp_path)
    resumed, _ = run(model_seed=5, epochs=2, checkpoint_dir=tmp_path)
    np.testing.assert_allclose(vq_losses(resumed), vq_losses(straight), rtol=1e-5)


def test_fit_refuses_kl_settings_for_a_vqvae():
    with pytest.raises(ValueError, match="kl_warmup_epochs"):
        fit(VQVAE(), TRAIN[:64], config=TrainingConfig(kl_warmup_epochs=3), progress=False)


@pytest.mark.slow
def test_the_held_out_kl_of_the_uniform_prior_is_49_log_k(small_model):
    model = small_model[0]
    batches = held_out_batches(TEST[:100], batch_size=64, binarize="dynamic", seed=0)
    scores = evaluate_vq_elbo(model, batches)
    assert scores["kl"] == 49 * math.log(8) and scores["images"] == 100
    batches = held_out_batches(TEST[:100], batch_size=64, binarize="dynamic", seed=0)
    x = np.concatenate(list(batches.as_numpy_iterator()))
    x = x.reshape(-1, 28, 28, 1)
    log_px = model.likelihood.log_prob(x, model.decode(model.encode(x)[1])).numpy()
    assert scores["log_likelihood"] == pytest.approx(log_px.mean(), rel=1e-5)
    assert scores["elbo"] == pytest.approx(log_px.mean() - 49 * math.log(8), rel=1e-5)


CLI_RUN = ["train", "--model", "vqvae", "--limit-train", "256", "--limit-test", "128"]


@pytest.mark.slow
def test_the_cli_trains_a_vqvae_resumes_it_and_draws_its_figures(tmp_path, capsys, monkeypatch):
    # The first run in a process of its own, as a learner starts it; the rerun in this one.
    out = tmp_path / "run"
    first = run_cli(*CLI_RUN, "--epochs", "1", "--no-figures", "--out", out)
    assert first.returncode == 0, first.stdout + first.stderr
    config = json.loads((out / "config.json").read_text())["model"]
    assert config["kind"] == "vqvae" and config["num_codes"] == 64 and config["latent_dim"] == 16
    second = run_cli_here(monkeypatch, capsys, *CLI_RUN, "--epochs", "2", "--out", out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Resumed from" in second.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["finished"]
    # no loss curves (their panels are -ELBO and KL) and no latent scatter or manifold
    assert {p.name for p in out.glob("*.png")} == {"reconstructions.png", "samples.png"}


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model", "vqvae", "--conv"], "--conv and --model vqvae"),
        (["--model", "vqvae", "--beta", "2"], "--beta"),
        (["--model", "vqvae", "--kl-warmup-epochs", "3"], "--kl-warmup-epochs"),
        (["--model", "vqvae", "--intermediate-dim", "64"], "does not apply"),
        (["--num-codes", "16"], "--num-codes is the VQ-VAE's"),
        (["--ema"], "--ema is the VQ-VAE's"),
        (["--model", "vqvae", "--num-codes", "1"], "expected an integer >= 2"),
        (["--model", "vqvae", "--strategy", "mirrored", "--limit-train", "64"], "closed-form ELBO"),
    ],
)
def test_the_cli_refuses_what_a_vqvae_does_not_combine_with(
    args, match, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    assert match in one_cli_error_line(["train", *args, "--out", tmp_path / "run"], capsys)


def test_decoding_codes_out_of_range_or_of_another_shape_is_refused(small_model):
    model = small_model[0]
    assert model.decode(np.full((2, 7, 7), 7)).shape == (2, 28, 28, 1)
    with pytest.raises(ValueError, match=r"lie in \[0, 7\]"):
        model.decode(np.full((1, 7, 7), 8))
    with pytest.raises(ValueError, match=r"shape \(n, 7, 7\)"):
        model.decode(np.zeros((1, 49), int))
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        model.sample(0)


@pytest.mark.slow
def test_a_compiled_step_restarts_the_codes_its_batch_left_unused(small_model):
    keras.utils.set_random_seed(0)
    model = VQVAE(num_codes=64, code_dim=3, seed=0, ema=True, restart_after=1)
    x = small_model[1]
    z_e, codes = model.encode(x)
    unused = np.setdiff1d(np.arange(64), codes.numpy().ravel())
    assert len(unused) > 0
    optimizer = keras.optimizers.Adam(1e-3)
    prepare_for_training(model, optimizer, x)
    tf.function(vq_step_terms)(model, optimizer, x)
    rows = z_e.numpy().reshape(-1, 3)
    for vector in model.quantizer.codebook.numpy()[unused]:
        assert np.abs(rows - vector).max(axis=1).min() < 1e-6, vector
