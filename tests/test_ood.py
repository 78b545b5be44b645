"""Out-of-distribution scores (vae_tutorial/ood.py) against independent references: a
pairwise count, a bootstrap, closed-form normal quantiles and powers, zlib called directly,
numpy computations from the model's encoder and decoder, and the CLI end to end."""

import json
import math
import zlib
from statistics import NormalDist

import keras
import numpy as np
import pytest
from helpers import one_cli_error_line
from scipy import stats

import vae_tutorial as vt
from vae_tutorial import cli, ood

PHI = NormalDist()


def binomial_bounds(n, p, level=0.999):
    """The central ``level`` interval of a Binomial(n, p) count."""
    return stats.binom.interval(level, n, p)


# --------------------------------------------------------------------------------------------
# AUROC


def pairwise_auroc(inside, outside):
    """The AUROC by the definition: every (in, out) pair, a win 1, a tie 1/2."""
    total = 0.0
    for a in inside:
        for b in outside:
            total += 1.0 if b > a else 0.5 if b == a else 0.0
    return total / (len(inside) * len(outside))


@pytest.mark.parametrize("n_in, n_out, levels", [(30, 17, 5), (1, 9, 3), (12, 1, 2), (40, 40, 100)])
def test_auroc_is_the_pairwise_count_ties_half(n_in, n_out, levels):
    rng = np.random.default_rng(n_in * 100 + n_out)
    inside = rng.integers(0, levels, n_in).astype(float)  # few levels: many ties
    outside = rng.integers(0, levels, n_out) + 0.5 * rng.integers(0, 2, n_out)
    assert ood.auroc(inside, outside) == pytest.approx(pairwise_auroc(inside, outside), abs=1e-12)


def test_auroc_degenerate_cases():
    assert ood.auroc([0.0, 1.0], [2.0, 3.0]) == 1.0  # out always higher: perfect
    assert ood.auroc([2.0, 3.0], [0.0, 1.0]) == 0.0  # the wrong way round
    assert ood.auroc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5  # all tied
    assert ood.auroc([5], [5]) == 0.5
    area, low, high = ood.auroc_interval([0.0, 1.0], [2.0, 3.0])
    assert (area, low, high) == (1.0, 1.0, 1.0)  # DeLong's variance is 0 at separation


@pytest.mark.parametrize(
    "inside, outside, error, words",
    [
        ([1.0, np.nan], [1.0], ValueError, "NaN"),
        ([1.0], [np.inf], ValueError, "NaN or Inf"),
        ([], [1.0], ValueError, "at least one"),
        ([[1.0, 2.0]], [1.0], ValueError, "1-d"),
        (["a", "b"], [1.0], TypeError, "numbers"),
        ([True, False], [1.0], TypeError, "numbers"),
    ],
)
def test_auroc_rejects_bad_scores(inside, outside, error, words):
    with pytest.raises(error, match=words):
        ood.auroc(inside, outside)


def test_auroc_interval_rejects_too_few_scores_and_bad_levels():
    with pytest.raises(ValueError, match="at least 2"):
        ood.auroc_interval([1.0], [2.0, 3.0])
    for level in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="level"):
            ood.auroc_interval([1.0, 2.0], [2.0, 3.0], level=level)


def test_delong_standard_error_agrees_with_a_bootstrap():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(0, 1, 150), rng.normal(1, 1.5, 120)
    area, low, high = ood.auroc_interval(inside, outside, level=0.9)
    delong_se = (high - low) / (2 * PHI.inv_cdf(0.95))
    assert 0 < low < area < high < 1  # not clipped, so the width gives the SE
    # The bootstrap (each sample resampled on its own), from the matrix of pairwise wins.
    wins = (outside[:, None] > inside[None, :]).astype(float)
    b = 4000
    replicates = [
        wins[rng.integers(0, 120, 120)][:, rng.integers(0, 150, 150)].mean() for _ in range(b)
    ]
    boot_se = np.std(replicates, ddof=1)
    # A standard deviation from b normal draws has a standard error of about sd / sqrt(2(b-1)).
    assert abs(delong_se - boot_se) < 4 * boot_se / math.sqrt(2 * (b - 1))


def test_delong_interval_covers_the_true_auroc_at_the_nominal_rate():
    # in ~ N(0, 1), out ~ N(d, 1): AUROC = P(out > in) = Phi(d / sqrt 2)
    rng = np.random.default_rng(1)
    d, n, runs, level = 1.0, 80, 400, 0.9
    truth = PHI.cdf(d / math.sqrt(2))
    covered = 0
    for _ in range(runs):
        _, low, high = ood.auroc_interval(rng.normal(0, 1, n), rng.normal(d, 1, n), level)
        covered += low <= truth <= high
    lowest, highest = binomial_bounds(runs, level)
    assert lowest <= covered <= highest, (covered, lowest, highest)


# --------------------------------------------------------------------------------------------
# The typicality test, on scores


def test_typicality_statistic_and_threshold_by_hand():
    rng = np.random.default_rng(2)
    train = rng.normal(100, 3, 20000)
    m, alpha = 10, 0.05
    batches = [rng.normal(100, 3, m), rng.normal(104, 3, m), rng.normal(96, 3, m)]
    result = ood.typicality_from_scores(train, batches, alpha=alpha, n_bootstrap=20000)
    entropy = train.mean()
    assert result.entropy == pytest.approx(entropy, rel=1e-12)
    expected = [abs(b.mean() - entropy) for b in batches]
    np.testing.assert_allclose(result.statistic, expected, rtol=1e-12)
    np.testing.assert_array_equal(result.is_out, result.statistic > result.threshold)
    # The bootstrap batch mean of the training scores is normal with sd s / sqrt(m), so the
    # threshold is |N(0, s^2/m)|'s (1 - alpha) quantile, s / sqrt(m) * z_(1 - alpha/2).
    spread = train.std() / math.sqrt(m)
    closed_form = spread * PHI.inv_cdf(1 - alpha / 2)
    # The sample quantile's standard error: sqrt(p (1 - p) / n) / density at the quantile.
    density = 2 * PHI.pdf(PHI.inv_cdf(1 - alpha / 2)) / spread
    quantile_se = math.sqrt(alpha * (1 - alpha) / 20000) / density
    assert abs(result.threshold - closed_form) < 4 * quantile_se


def rejection_probability(shift, spread, threshold):
    """P(|N(shift, spread^2)| > threshold), in closed form."""
    inside = PHI.cdf((threshold - shift) / spread) - PHI.cdf((-threshold - shift) / spread)
    return 1.0 - inside


@pytest.mark.parametrize("shift", [0.0, 0.8, -0.8])
def test_typicality_rejects_at_the_rate_its_threshold_implies(shift):
    # shift 0: batches of the training distribution, rejected at about alpha; a shift up
    # (less likely) or down (*more* likely than typical) is rejected at the normal power.
    rng = np.random.default_rng(3)
    train = rng.normal(0, 1, 20000)
    m, alpha, runs = 10, 0.05, 1000
    batches = list(rng.normal(shift, 1, (runs, m)))
    result = ood.typicality_from_scores(train, batches, alpha=alpha, n_bootstrap=20000)
    spread = 1 / math.sqrt(m)  # the batch mean of N(shift, 1) scores
    p = rejection_probability(shift - result.entropy, spread, result.threshold)
    if shift == 0:
        assert abs(p - alpha) < 0.01  # the threshold's own level
    else:
        assert p > 0.5
    lowest, highest = binomial_bounds(runs, p)
    assert lowest <= result.is_out.sum() <= highest, (result.is_out.sum(), p)


def test_typicality_flags_a_batch_more_likely_than_typical():
    rng = np.random.default_rng(4)
    train = rng.normal(0, 1, 5000)
    result = ood.typicality_from_scores(train, [rng.normal(-3, 1, 20)], alpha=0.01)
    assert result.is_out.tolist() == [True]  # 3 above 0.58 = 2.58 / sqrt(20): sure


def test_typicality_needs_batches_of_one_size():
    with pytest.raises(ValueError, match="same size"):
        ood.typicality_from_scores([1.0, 2.0, 3.0], [[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="alpha"):
        ood.typicality_from_scores([1.0, 2.0, 3.0], [[1.0, 2.0]], alpha=1.0)


# --------------------------------------------------------------------------------------------
# Scores from a model


@pytest.fixture(scope="module")
def digits():
    """512 training and 40 test digits of the bundled MNIST sample."""
    data = vt.load_dataset("mnist", download=False)
    return data.train_images[:512], data.test_images[:40]


@pytest.fixture(scope="module")
def untrained(digits):
    """A tiny MLP VAE as built, and 40 test digits: for the identities, which hold for any
    weights."""
    keras.utils.set_random_seed(0)
    return vt.VAE(latent_dim=2, intermediate_dim=32), digits[1]


@pytest.fixture(scope="module")
def trained(digits):
    """A tiny MLP VAE after one epoch on 512 digits, and 40 test digits."""
    keras.utils.set_random_seed(0)
    model = vt.VAE(latent_dim=2, intermediate_dim=32)
    config = vt.TrainingConfig(epochs=1, batch_size=64)
    vt.fit(model, digits[0], config=config, progress=False, fast=False)
    return model, digits[1]


def binarized(images, seed=0):
    return np.asarray(vt.binarize_images(images, "dynamic", seed=seed))


@pytest.mark.slow
def test_naive_score_is_minus_the_iwae_bound_for_the_same_seed(trained):
    model, images = trained
    x = binarized(images)
    keras.utils.set_random_seed(5)
    nll = ood.negative_log_likelihood_scores(model, x, 20, seed=3, batch_size=len(x))
    keras.utils.set_random_seed(5)
    bound = vt.iwae_bound(model, x.reshape(-1, 784), 20, seed=3).numpy()
    np.testing.assert_allclose(nll, -bound, rtol=1e-6)
    keras.utils.set_random_seed(5)
    bits = ood.negative_log_likelihood_scores(
        model, x, 20, unit="bits_per_dim", seed=3, batch_size=len(x)
    )
    np.testing.assert_allclose(bits, -bound / (784 * math.log(2)), rtol=1e-6)


def test_uint8_images_are_scored_as_levels_over_255(untrained):
    model, images = untrained
    keras.utils.set_random_seed(6)
    from_uint8 = ood.reconstruction_probability_scores(model, images, 3, seed=1)
    from_float = ood.reconstruction_probability_scores(model, images / 255.0, 3, seed=1)
    np.testing.assert_allclose(from_uint8, from_float, rtol=1e-6)


def numpy_bernoulli_log_likelihood(x, logits):
    """sum over pixels of x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = x l - log(1 + e^l)."""
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def test_reconstruction_probability_with_the_same_noise(untrained):
    model, images = untrained
    x = binarized(images).reshape(-1, 784)
    samples = 6
    scores = ood.reconstruction_probability_scores(model, x, samples, seed=7)
    # The documented draw: eps of shape (samples, batch, latent_dim) from SeedGenerator(seed).
    eps = keras.random.normal((samples, len(x), 2), seed=keras.random.SeedGenerator(7)).numpy()
    mu, log_var = (t.numpy().astype(np.float64) for t in model.encode(x))
    z = mu + np.exp(0.5 * log_var) * eps
    logits = model.decode(z.reshape(-1, 2).astype(np.float32)).numpy().astype(np.float64)
    log_px_z = numpy_bernoulli_log_likelihood(np.tile(x, (samples, 1)), logits)
    expected = -log_px_z.reshape(samples, len(x)).mean(axis=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_reconstruction_probability_is_the_posterior_average_within_mc_error(untrained):
    model, images = untrained
    x = binarized(images[:4]).reshape(-1, 784)
    scores = ood.reconstruction_probability_scores(model, x, 2000, seed=8)
    # numpy's own draws from q(z | x): the mean and its standard error per image
    rng = np.random.default_rng(8)
    mu, log_var = (t.numpy().astype(np.float64) for t in model.encode(x))
    for i in range(len(x)):
        z = mu[i] + np.exp(0.5 * log_var[i]) * rng.standard_normal((2000, 2))
        logits = model.decode(z.astype(np.float32)).numpy().astype(np.float64)
        values = -numpy_bernoulli_log_likelihood(x[i], logits)
        standard_error = values.std(ddof=1) / math.sqrt(len(values))
        # both estimates carry an error of this size: their difference sqrt(2) of it
        assert abs(scores[i] - values.mean()) < 4 * math.sqrt(2) * standard_error


def test_likelihood_ratio_is_the_difference_of_the_two_nlls(untrained):
    model, images = untrained
    keras.utils.set_random_seed(1)  # another model: a background one, before its training
    background = vt.VAE(latent_dim=2, intermediate_dim=32)
    x = binarized(images)
    keras.utils.set_random_seed(9)
    ratio = ood.likelihood_ratio_scores(model, background, x, 10, seed=2)
    keras.utils.set_random_seed(9)
    nll_model = ood.negative_log_likelihood_scores(model, x, 10, seed=2)
    nll_background = ood.negative_log_likelihood_scores(background, x, 10, seed=2)
    np.testing.assert_allclose(ratio, nll_model - nll_background, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("rate", [0.0, 0.2, 1.0])
def test_perturb_images_replaces_about_rate_of_the_pixels_with_levels(rate):
    images = np.random.default_rng(0).integers(0, 256, (200, 28, 28)).astype(np.uint8)
    perturbed = ood.perturb_images(images, rate, seed=3)
    assert perturbed.dtype == np.uint8 and perturbed.shape == images.shape
    changed = int(np.sum(perturbed != images))
    # a replaced pixel draws its old level again with probability 1/256: unchanged
    lowest, highest = binomial_bounds(images.size, rate * 255 / 256)
    assert lowest <= changed <= highest, (changed, lowest, highest)

    as_floats = ood.perturb_images(images / 255.0, rate, seed=3)
    assert as_floats.min() >= 0.0 and as_floats.max() <= 1.0
    levels = as_floats * 255
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # only the 256 levels


def test_perturb_images_rejects_a_bad_rate_and_bad_pixels():
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(ValueError, match="rate"):
        ood.perturb_images(images, 1.5)
    with pytest.raises(ValueError, match="rate"):
        ood.perturb_images(images, -0.1)
    with pytest.raises(ValueError, match=r"0\.\.255"):
        ood.perturb_images(np.full((2, 28, 28), 300), 0.1)


def test_compressed_bits_is_zlibs_length_and_the_correction_subtracts_it(untrained):
    model, images = untrained
    x = images[:5]
    direct = [8 * len(zlib.compress(image.tobytes(), 9)) for image in x]
    np.testing.assert_array_equal(ood.compressed_bits(x), direct)
    # Uniform noise cannot be compressed: at least 8 bits a pixel; a blank image to almost 0.
    noise = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    assert np.all(ood.compressed_bits(noise) >= 8 * 784)
    assert np.all(ood.compressed_bits(np.zeros((1, 28, 28), np.uint8)) < 0.2 * 784)
    # A black-and-white image is coded at 1 bit a pixel (PNG's bit depth 1): its 784 bits
    # packed into 98 bytes, which random ones fill beyond compression.
    binary = np.random.default_rng(1).integers(0, 2, (3, 28, 28)).astype(np.uint8)
    packed = [8 * len(zlib.compress(np.packbits(image.ravel()).tobytes(), 9)) for image in binary]
    np.testing.assert_array_equal(ood.compressed_bits(binary * 255), packed)
    np.testing.assert_array_equal(ood.compressed_bits(binary.astype(float)), packed)
    assert np.all(ood.compressed_bits(binary * 255) >= 784)

    # S(x) = -log2 p(x) / D - L(x) / D: a longer code lowers the score (less likely OOD).
    keras.utils.set_random_seed(4)
    corrected = ood.complexity_corrected_scores(model, x, 10, seed=1)
    keras.utils.set_random_seed(4)
    nll = ood.negative_log_likelihood_scores(model, x, 10, seed=1)
    np.testing.assert_allclose(
        corrected, nll / (784 * math.log(2)) - np.array(direct) / 784, rtol=1e-6
    )


@pytest.mark.parametrize(
    "images, error, words",
    [
        (np.full((2, 28, 28), 300), ValueError, r"0\.\.255"),
        (np.full((2, 28, 28), -1), ValueError, r"0\.\.255"),
        (np.full((2, 28, 28), 1.5), ValueError, r"\[0, 1\]"),
        (np.full((2, 28, 28), np.nan), ValueError, "NaN"),
        (np.full((2, 28, 28), "x"), TypeError, "uint8"),
        (np.zeros((2, 10, 10), np.uint8), ValueError, "28x28"),
        (np.zeros((0, 28, 28), np.uint8), ValueError, "N >= 1"),
    ],
)
def test_bad_images_get_a_clear_error(untrained, images, error, words):
    model, _ = untrained
    with pytest.raises(error, match=words):
        ood.negative_log_likelihood_scores(model, images, 2)


def test_a_conditional_model_is_refused():
    model = vt.ConditionalVAE(latent_dim=2, intermediate_dim=8)
    with pytest.raises(ValueError, match="p\\(x \\| y\\)"):
        ood.reconstruction_probability_scores(model, np.zeros((2, 28, 28), np.uint8))


def test_typicality_test_runs_the_scores_on_the_model(untrained):
    model, images = untrained
    train, batches = images[:20], [images[20:30], images[30:40]]
    keras.utils.set_random_seed(3)
    result = ood.typicality_test(model, train, batches, alpha=0.1, k=5, seed=2)
    keras.utils.set_random_seed(3)
    train_nll = ood.negative_log_likelihood_scores(model, train, 5, seed=2)
    batch_nll = [ood.negative_log_likelihood_scores(model, b, 5, seed=2) for b in batches]
    expected = [abs(b.mean() - train_nll.mean()) for b in batch_nll]
    np.testing.assert_allclose(result.statistic, expected, rtol=1e-6)


@pytest.mark.slow
def test_ood_table_has_one_row_per_score_each_within_its_interval(trained):
    model, images = trained
    noise = np.random.default_rng(0).integers(0, 256, (30, 28, 28)).astype(np.uint8)
    rows = ood.ood_table(model, binarized(images), binarized(noise), k=5, background_model=model)
    assert [row["score"] for row in rows] == [
        "negative_log_likelihood",
        "complexity_corrected",
        "reconstruction_probability",
        "likelihood_ratio",
    ]
    for row in rows:
        assert 0.0 <= row["low"] <= row["auroc"] <= row["high"] <= 1.0, row
    # Binarized uniform noise is far from any digit: the naive NLL ranks all of it higher.
    assert rows[0]["auroc"] == 1.0 and rows[0]["out_mean"] > rows[0]["in_mean"]


def mean_pixel(images):
    return images.reshape(len(images), -1).mean(axis=1)


def test_ood_table_wires_each_score_and_the_typicality_batches(untrained, monkeypatch):
    # A stand-in NLL anyone can compute (the mean pixel), so each row can be redone by hand.
    model, _ = untrained
    from vae_tutorial import ood

    monkeypatch.setattr(
        ood, "negative_log_likelihood_scores", lambda model, images, *a, **kw: mean_pixel(images)
    )
    rng = np.random.default_rng(0)
    train, inside = (rng.integers(0, 120, (n, 28, 28)).astype(np.uint8) for n in (25, 40))
    outside = rng.integers(60, 256, (36, 28, 28)).astype(np.uint8)
    rows = ood.ood_table(model, inside, outside, k=2, samples=2, train_images=train)
    by_name = {row["score"]: row for row in rows}
    assert list(by_name) == [
        "negative_log_likelihood",
        "complexity_corrected",
        "reconstruction_probability",
        "typicality",
    ]

    def corrected(x):
        return mean_pixel(x) - np.array([8 * len(zlib.compress(i.tobytes(), 9)) for i in x]) / 784

    def typicality(x):  # batches of 10 consecutive images; the last 6 outside ones left out
        return np.abs(mean_pixel(x)[: len(x) // 10 * 10].reshape(-1, 10).mean(1) - train.mean())

    for name, score in [
        ("negative_log_likelihood", mean_pixel),
        ("complexity_corrected", corrected),
        ("typicality", typicality),
    ]:
        expected = pairwise_auroc(score(inside), score(outside))
        assert by_name[name]["auroc"] == pytest.approx(expected, abs=1e-12), name
        assert by_name[name]["out_mean"] == pytest.approx(score(outside).mean()), name
    with pytest.raises(ValueError, match="2 batches"):
        ood.ood_table(model, inside[:15], outside, train_images=train)


# --------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run of one epoch on 256 bundled MNIST digits, through ``cli.main`` offline."""
    out = tmp_path_factory.mktemp("ood") / "run"
    train = ["train", "--epochs", "1", "--limit-train", "256", "--limit-test", "100"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAE_TUTORIAL_OFFLINE", "1")
        patch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)
        assert (
            cli.main([*train, "--intermediate-dim", "32", "--no-figures", "--out", str(out)]) == 0
        )
    return out


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("VAE_TUTORIAL_OFFLINE", "1")
    monkeypatch.delenv("VAE_TUTORIAL_DATA_DIR", raising=False)


@pytest.mark.slow
def test_evaluate_adds_the_auroc_of_each_score(tiny_run, offline, capsys):
    args = ["evaluate", "--out", str(tiny_run), "--k", "5", "--ood-data", "fashion_mnist"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    ood = json.loads((tiny_run / "metrics.json").read_text())["ood"]["fashion_mnist"]
    assert ood["images_in"] == ood["images_out"] == 100 and ood["k"] == 5
    assert set(ood["scores"]) == {
        "negative_log_likelihood",
        "complexity_corrected",
        "reconstruction_probability",
        "typicality",
    }
    for name, score in ood["scores"].items():
        assert 0.0 <= score["low"] <= score["auroc"] <= score["high"] <= 1.0, name
        assert f"{name} " in printed and f"{score['auroc']:.3f}" in printed


@pytest.mark.slow
def test_evaluate_ood_data_errors_are_one_line(tiny_run, offline, tmp_path, capsys):
    evaluate = ["evaluate", "--out", tiny_run, "--k", "2"]
    line = one_cli_error_line([*evaluate, "--ood-data", "cifar10"], capsys)
    assert "cifar10" in line and "fashion_mnist" in line
    line = one_cli_error_line([*evaluate, "--ood-data", "mnist"], capsys)
    assert "own dataset" in line and "fashion_mnist" in line
    # A data folder with MNIST only: Fashion-MNIST is missing, and the fix is named.
    data = vt.load_dataset("mnist", download=False)
    (tmp_path / "mnist").mkdir()
    np.savez(
        tmp_path / "mnist" / "mnist.npz",
        x_train=data.train_images,
        y_train=data.train_labels,
        x_test=data.test_images,
        y_test=data.test_labels,
    )
    args = [*evaluate, "--data-dir", tmp_path, "--ood-data", "fashion_mnist"]
    line = one_cli_error_line(args, capsys)
    assert "Fashion-MNIST" in line and "Fix:" in line
