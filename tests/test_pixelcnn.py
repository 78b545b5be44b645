"""The PixelCNN prior: causality by perturbation, log_prob from its logits computed apart,
sampling against the model's own first-position distribution, a short fit, and the VQ-VAE's
bound under a learned prior."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TEST
from scipy.special import log_softmax, softmax

from vae_tutorial.batching import held_out_batches
from vae_tutorial.pixelcnn import MaskedConv2D, PixelCNNPrior, train_prior
from vae_tutorial.vqvae import VQVAE, evaluate_vq_elbo

ROWS, COLS = 5, 6


def raster(i, j):
    return i * COLS + j


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_a_masked_convolution_sees_only_earlier_positions(mask_type):
    keras.utils.set_random_seed(0)
    layer = MaskedConv2D(4, 3, mask_type)
    x = np.random.default_rng(0).normal(size=(1, ROWS, COLS, 2)).astype(np.float32)
    before = layer(x).numpy()
    for i in range(ROWS):
        for j in range(COLS):
            moved = x.copy()
            moved[0, i, j] += 1.0
            changed = np.abs(layer(moved).numpy() - before).max(axis=-1)[0] > 0
            for a in range(ROWS):
                for b in range(COLS):
                    earlier = raster(a, b) < raster(i, j)
                    itself = (a, b) == (i, j)
                    if earlier or (itself and mask_type == "A"):
                        assert not changed[a, b], (mask_type, (i, j), (a, b))
            if mask_type == "B":
                assert changed[i, j]
            if j + 1 < COLS:
                assert changed[i, j + 1]  # the next position reads it


@pytest.fixture(scope="module")
def prior():
    keras.utils.set_random_seed(0)
    return PixelCNNPrior(num_codes=6, grid=(ROWS, COLS), filters=16, hidden_layers=2)


def test_the_logits_at_a_position_do_not_depend_on_that_or_later_codes(prior):
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 6, size=(3, ROWS, COLS))
    before = prior(codes).numpy()
    for p in range(ROWS * COLS):
        i, j = divmod(p, COLS)
        later = codes.copy().reshape(3, -1)
        later[:, p:] = rng.integers(0, 6, size=later[:, p:].shape)
        after = prior(later.reshape(codes.shape)).numpy()
        np.testing.assert_allclose(after[:, i, j], before[:, i, j], atol=1e-6, err_msg=str(p))
        if p > 0:  # and do depend on the code to the left, or above in the first column
            earlier = codes.copy()
            a, b = (i, j - 1) if j > 0 else (i - 1, j)
            earlier[:, a, b] = (earlier[:, a, b] + 1) % 6
            changed = prior(earlier).numpy()[:, i, j]
            assert np.abs(changed - before[:, i, j]).max() > 1e-6, p


def test_log_prob_is_the_sum_of_the_positions_categorical_log_probs(prior):
    codes = np.random.default_rng(2).integers(0, 6, size=(4, ROWS, COLS))
    log_probs = log_softmax(prior(codes).numpy().astype(np.float64), axis=-1)
    by_position = np.take_along_axis(log_probs, codes[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(prior.log_prob(codes), by_position.sum(axis=(1, 2)), rtol=1e-5)


@pytest.mark.slow
def test_samples_are_valid_codes_and_the_first_follows_its_distribution(prior):
    n = 3000
    samples = prior.sample(n, seed=0).numpy()
    assert samples.shape == (n, ROWS, COLS) and samples.dtype == np.int32
    assert samples.min() >= 0 and samples.max() < 6
    # Position (0, 0) sees no code: its distribution is the same for every grid.
    probs = softmax(prior(np.zeros((1, ROWS, COLS), np.int32)).numpy()[0, 0, 0].astype(float))
    counts = np.bincount(samples[:, 0, 0], minlength=6)
    sigma = np.sqrt(n * probs * (1 - probs))
    assert np.all(np.abs(counts - n * probs) < 5 * sigma), (counts, n * probs)
    np.testing.assert_array_equal(prior.sample(5, seed=7), prior.sample(5, seed=7))


@pytest.mark.slow
def test_a_short_fit_lowers_the_negative_log_likelihood():
    # Grids that repeat one code of four: about log 4 nats for the first, little after.
    rng = np.random.default_rng(3)
    codes = np.repeat(rng.integers(0, 4, size=(512, 1, 1)), ROWS * COLS).reshape(-1, ROWS, COLS)
    keras.utils.set_random_seed(0)
    prior = PixelCNNPrior(num_codes=6, grid=(ROWS, COLS), filters=16, hidden_layers=1)
    before = -float(np.mean(prior.log_prob(codes)))
    nll = train_prior(prior, codes, epochs=5, batch_size=64, learning_rate=3e-3)
    after = -float(np.mean(prior.log_prob(codes)))
    assert len(nll) == 5 and nll[-1] < nll[0]
    assert after < before / 2, (before, after)


@pytest.mark.parametrize(
    "codes, error, match",
    [
        (np.zeros((2, ROWS, COLS)), TypeError, "ints"),
        (np.zeros((2, 7, 7), int), ValueError, "shape"),
        (np.full((2, ROWS, COLS), 6), ValueError, r"\[0, 5\]"),
    ],
)
def test_bad_codes_are_refused_with_the_fix(prior, codes, error, match):
    with pytest.raises(error, match=match):
        prior.log_prob(codes)


def test_bad_mask_and_kernel_are_refused():
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2D(4, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2D(4, 4)


@pytest.mark.slow
def test_the_bound_under_a_learned_prior_charges_minus_log_p_codes():
    keras.utils.set_random_seed(0)
    model = VQVAE(num_codes=8, code_dim=3)
    prior = PixelCNNPrior(num_codes=8, filters=8, hidden_layers=1)
    batches = held_out_batches(TEST[:50], batch_size=32, binarize="dynamic", seed=0)
    scores = evaluate_vq_elbo(model, batches, prior=prior)
    x = np.concatenate(list(batches.as_numpy_iterator())).reshape(-1, 28, 28, 1)
    codes = model.encode(x)[1]
    log_px = model.likelihood.log_prob(x, model.decode(codes)).numpy()
    log_prior = prior.log_prob(codes).numpy()
    assert scores["kl"] == pytest.approx(-log_prior.mean(), rel=1e-5)
    assert scores["elbo"] == pytest.approx(np.mean(log_px + log_prior), rel=1e-5)
    samples = model.sample(3, prior=prior)
    assert samples.shape == (3, 28, 28, 1)
    assert float(tf.reduce_min(samples)) >= 0 and float(tf.reduce_max(samples)) <= 1
