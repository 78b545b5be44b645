"""Out-of-distribution scores from a trained VAE, and what a likelihood cannot tell.

A model trained on Fashion-MNIST can give MNIST digits a *higher* likelihood than its own
test images (Nalisnick et al., ICLR 2019, "Do deep generative models know what they don't
know?"). This module holds the naive score and four repairs, and the AUROC that compares
them.

**Convention: every score is per image, and a HIGHER score means "more likely out of
distribution".** So the AUROC is the probability that an out-of-distribution image scores
above an in-distribution one (ties counted half): 1 separates perfectly, 0.5 is chance,
below 0.5 ranks the wrong way round.

Images are uint8 (scaled to k / 255) or floats in [0, 1], used as they are: to score the
data a model was trained on, pass e.g. ``vt.binarize_images(images, "dynamic")``.

Taught in notebook 15_out_of_distribution.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import zlib
from collections.abc import Callable, Sequence
from statistics import NormalDist

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.evaluation import iwae_bound
from vae_tutorial.likelihoods import LEVELS, bits_per_dim
from vae_tutorial.types_ import Array
from vae_tutorial.validation import check_choice, check_finite_number, check_int

UNITS = ("nats", "bits_per_dim")
_ZLIB_LEVEL = 9  # the strongest DEFLATE, as Serra et al. use PNG's highest compression


# --------------------------------------------------------------------------------------------
# Inputs: scores, images, models


def _check_scores(scores: Array | Sequence[float], name: str) -> np.ndarray:
    """Require a 1-d array of at least one finite number; return it as float64."""
    array = np.asarray(scores)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be an array of numbers, got dtype {array.dtype}.")
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(
            f"{name} must be a 1-d array with one score per image (at least one), got shape "
            f"{array.shape}; flatten it with np.ravel."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} holds {int(np.sum(~np.isfinite(array)))} NaN or Inf value(s); every score "
            "must be finite (check the images and the model that scored them)."
        )
    return array.astype(np.float64)


def _pixels(images: Array, name: str = "images") -> np.ndarray:
    """Images (N, ...) as float32 in [0, 1]: integers 0..255 divided by 255, floats as given."""
    array = np.asarray(images)
    integer = np.issubdtype(array.dtype, np.integer)
    if array.dtype == bool or not (integer or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(
            f"{name} must be uint8 images (0..255) or floats in [0, 1], got dtype {array.dtype}."
        )
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(
            f"{name} must be a batch of images (N, 28, 28) with N >= 1, got shape {array.shape}."
        )
    if integer:
        if array.min() < 0 or array.max() > LEVELS - 1:
            raise ValueError(
                f"{name} has integer pixels in {array.min()}..{array.max()}; they must lie in "
                "0..255 (8-bit grey levels)."
            )
        return array.astype(np.float32) / (LEVELS - 1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or Inf pixels; every pixel must be finite.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(
            f"{name} has float pixels in [{array.min():g}, {array.max():g}]; they must lie in "
            "[0, 1] (divide 8-bit images by 255, or pass them as uint8)."
        )
    return array.astype(np.float32)


def _pixels_per_image(images: np.ndarray) -> int:
    return int(np.prod(images.shape[1:]))


def _model_images(model: keras.Model, images: Array) -> np.ndarray:
    """Images checked and reshaped for ``model``: (N, *model.event_shape), float32."""
    if not callable(getattr(model, "encode", None)) or not hasattr(model, "event_shape"):
        raise TypeError(
            f"model must be a trained vae_tutorial VAE or ConvVAE, got {type(model).__name__}."
        )
    if getattr(model, "num_classes", None) is not None:
        raise ValueError(
            "a ConditionalVAE scores log p(x | y), which needs each image's label; "
            "out-of-distribution images have none. Score with a VAE or ConvVAE."
        )
    pixels = _pixels(images)
    if _pixels_per_image(pixels) != int(np.prod(model.event_shape)):
        raise ValueError(
            f"images of shape {pixels.shape[1:]} do not fit the model's {model.event_shape}; "
            "pass 28x28 images (N, 28, 28)."
        )
    return pixels.reshape(-1, *model.event_shape)


def _in_batches(
    score: Callable[[np.ndarray], tf.Tensor], images: np.ndarray, batch_size: int
) -> np.ndarray:
    """``score`` of each batch of ``batch_size`` images, joined: one float64 per image."""
    batch_size = check_int(batch_size, "batch_size", 1, fix="e.g. batch_size=100.")
    parts = [
        np.asarray(score(images[i : i + batch_size])) for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64)


# --------------------------------------------------------------------------------------------
# AUROC and its interval


def _placements(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per score, the fraction of ``reference`` below it, ties counted half."""
    ordered = np.sort(reference)
    below = np.searchsorted(ordered, scores, side="left")
    up_to = np.searchsorted(ordered, scores, side="right")
    return (below + up_to) / (2.0 * len(ordered))


def auroc(in_scores: Array | Sequence[float], out_scores: Array | Sequence[float]) -> float:
    """The area under the ROC curve of separating ``out_scores`` from ``in_scores``.

    The Mann-Whitney U over n_in * n_out: the fraction of (in, out) pairs in which the
    out-of-distribution image scores higher, a tie counting 1/2. Taught in notebook
    15_out_of_distribution.
    """
    inside = _check_scores(in_scores, "in_scores")
    outside = _check_scores(out_scores, "out_scores")
    return float(np.mean(_placements(outside, inside)))


def auroc_interval(
    in_scores: Array | Sequence[float], out_scores: Array | Sequence[float], level: float = 0.95
) -> tuple[float, float, float]:
    """``(auroc, low, high)``: the AUROC and a normal interval at ``level`` from DeLong's
    variance (DeLong, DeLong & Clarke-Pearson 1988), clipped to [0, 1].

    Var = s_out^2 / n_out + s_in^2 / n_in, with s_out^2 the sample variance over the
    out-of-distribution images of the fraction of in-distribution scores each exceeds, and
    s_in^2 that over the in-distribution images of the fraction of out-of-distribution
    scores above each (ties half). At an AUROC of exactly 0 or 1 the variance is 0 and the
    interval a point. Needs at least two scores on each side. Taught in notebook
    15_out_of_distribution.
    """
    inside = _check_scores(in_scores, "in_scores")
    outside = _check_scores(out_scores, "out_scores")
    level = check_finite_number(level, "level", exclusive=True, fix="e.g. level=0.95.")
    if level >= 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}; e.g. 0.95.")
    if min(len(inside), len(outside)) < 2:
        raise ValueError(
            f"an interval needs at least 2 scores on each side, got {len(inside)} in- and "
            f"{len(outside)} out-of-distribution scores."
        )
    out_exceeds = _placements(outside, inside)
    in_exceeded = 1.0 - _placements(inside, outside)
    area = float(np.mean(out_exceeds))
    variance = np.var(out_exceeds, ddof=1) / len(outside) + np.var(in_exceeded, ddof=1) / len(
        inside
    )
    half_width = NormalDist().inv_cdf(0.5 + level / 2.0) * math.sqrt(variance)
    return area, max(0.0, area - half_width), min(1.0, area + half_width)


# --------------------------------------------------------------------------------------------
# Scores


def negative_log_likelihood_scores(
    model: keras.Model, images: Array, k: int = 100,
    *, unit: str = "nats", seed: int | None = None, batch_size: int = 100,
) -> np.ndarray:  # fmt: skip
    """The naive score: -log p(x) per image, estimated by -``iwae_bound`` with ``k`` samples.

    In nats, or with ``unit="bits_per_dim"`` in bits per pixel (``bits_per_dim``). The
    score Nalisnick et al. (2019) show ranking some foreign data as *more* typical than the
    training data's own. Taught in notebook 15_out_of_distribution.
    """
    unit = check_choice(unit, "unit", UNITS)
    x = _model_images(model, images)
    log_p = _in_batches(lambda part: iwae_bound(model, part, k, seed=seed), x, batch_size)
    if unit == "bits_per_dim":
        return np.asarray(bits_per_dim(log_p, dims=_pixels_per_image(x)), np.float64)
    return -log_p


def likelihood_ratio_scores(
    model: keras.Model, background_model: keras.Model, images: Array, k: int = 100,
    *, seed: int | None = None, batch_size: int = 100,
) -> np.ndarray:  # fmt: skip
    """Ren et al. (2019)'s likelihood ratio, negated to our convention, in nats per image:

        score(x) = -(log p_model(x) - log p_background(x)) = NLL_model(x) - NLL_background(x).

    ``background_model`` is the same kind of model trained on :func:`perturb_images` of the
    training data: it learns the background statistics (how many dark pixels) and not the
    shapes, so the ratio keeps what is specific to the training data.
    Taught in notebook 15_out_of_distribution.
    """
    nll = functools.partial(
        negative_log_likelihood_scores, images=images, k=k, seed=seed, batch_size=batch_size
    )
    return nll(model) - nll(background_model)


def perturb_images(images: Array, rate: float, seed: int = 0) -> np.ndarray:
    """Each pixel replaced, with probability ``rate``, by one of the 256 levels drawn
    uniformly (Ren et al. 2019's perturbation; they train the background model with
    rate 0.1-0.3). uint8 in, uint8 out; floats in [0, 1] get a level k / 255.
    Taught in notebook 15_out_of_distribution.
    """
    pixels = _pixels(images)
    rate = check_finite_number(rate, "rate", fix="rate is the fraction of pixels, e.g. 0.2.")
    if rate > 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}; it is a fraction of the pixels.")
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    replaced = rng.random(pixels.shape) < rate
    noise = rng.integers(0, LEVELS, pixels.shape) / (LEVELS - 1)
    perturbed = np.where(replaced, noise, pixels).astype(np.float32)
    if np.issubdtype(np.asarray(images).dtype, np.integer):
        return np.round(perturbed * (LEVELS - 1)).astype(np.uint8)
    return perturbed


def _packed(image: np.ndarray) -> bytes:
    """An image's pixels as bytes: one bit each if it is black and white, else one byte."""
    if np.all((image == 0) | (image == LEVELS - 1)):
        return np.packbits(image.ravel() > 0).tobytes()
    return image.tobytes()


def compressed_bits(images: Array) -> np.ndarray:
    """L(x) per image: the bits of zlib's DEFLATE (level 9) of its pixels.

    DEFLATE is the compressor inside PNG, which Serra et al. (2020) use; PNG's headers add
    the same number of bytes to every image, which changes no ranking. Floats in [0, 1] are
    rounded to the level round(255 x) first. A grey image is coded at 8 bits a pixel, a
    black-and-white one (binarized data) at 1 bit a pixel, as PNG stores it at bit depth 1:
    otherwise the compressor would spend 8 bits on what a model scores as 1.
    Taught in notebook 15_out_of_distribution.
    """
    levels = np.round(_pixels(images) * (LEVELS - 1)).astype(np.uint8)
    return np.array([8.0 * len(zlib.compress(_packed(x), _ZLIB_LEVEL)) for x in levels])


def _minus_complexity(bits_per_pixel: np.ndarray, images: Array) -> np.ndarray:
    return bits_per_pixel - compressed_bits(images) / _pixels_per_image(_pixels(images))


def complexity_corrected_scores(
    model: keras.Model, images: Array, k: int = 100,
    *, seed: int | None = None, batch_size: int = 100,
) -> np.ndarray:  # fmt: skip
    """Serra et al. (2020)'s S(x) = -l_M(x) - L(x), per pixel, in bits per dimension.

    l_M(x) = log2 p(x) is the model's log-likelihood in bits and L(x) the image's length
    under a general lossless compressor (:func:`compressed_bits`), both divided by the
    number of pixels D: S(x) = (-log2 p(x) - L(x)) / D. A simple image (a blank shirt, a
    thin digit) gets a high likelihood from any model and a short code from the compressor:
    the difference removes what is easy about it for everyone. Higher S: more likely out
    of distribution. Taught in notebook 15_out_of_distribution.
    """
    bits = negative_log_likelihood_scores(
        model, images, k, unit="bits_per_dim", seed=seed, batch_size=batch_size
    )
    return _minus_complexity(bits, images)


def reconstruction_probability_scores(
    model: keras.Model, images: Array, samples: int = 10,
    *, seed: int | None = None, batch_size: int = 100,
) -> np.ndarray:  # fmt: skip
    """An & Cho (2015)'s reconstruction probability, negated: -(1/L) sum_l log p(x | z_l).

    z_l = mu + sigma * eps_l ~ q(z | x), L = ``samples``, with eps of shape
    (samples, batch, latent_dim) drawn per batch by ``keras.random.normal`` from one
    ``keras.random.SeedGenerator(seed)``. In nats per image; the KL term of the ELBO is left
    out. Taught in notebook 15_out_of_distribution.
    """
    samples = check_int(samples, "samples", 1, fix="e.g. samples=10.")
    x = _model_images(model, images)
    noise = keras.random.SeedGenerator(seed)

    def score(part: np.ndarray) -> tf.Tensor:
        mu, log_var = model.encode(part)
        eps = keras.random.normal((samples, *mu.shape), dtype=mu.dtype, seed=noise)
        z = tf.reshape(mu + tf.exp(0.5 * log_var) * eps, [-1, mu.shape[-1]])
        repeated = tf.tile(part, [samples] + [1] * (part.ndim - 1))
        log_px_z = tf.reshape(model.log_likelihood(repeated, z), [samples, -1])
        return -tf.reduce_mean(log_px_z, axis=0)

    return _in_batches(score, x, batch_size)


# --------------------------------------------------------------------------------------------
# The typicality test: a batch at a time


@dataclasses.dataclass(frozen=True)
class TypicalityResult:
    """What :func:`typicality_test` decides, one entry per test batch.

    Taught in notebook 15_out_of_distribution.
    """

    statistic: np.ndarray  # |mean NLL of the batch - entropy|
    threshold: float  # the bootstrap's (1 - alpha) quantile of the statistic on training batches
    is_out: np.ndarray  # statistic > threshold: the batch is out of distribution
    entropy: float  # H_hat, the training images' mean NLL


def _batch_statistics(train: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    """|mean of each run of ``size`` consecutive scores - mean of ``train``| (a last, shorter
    run is left out)."""
    whole = len(scores) - len(scores) % size
    return np.abs(scores[:whole].reshape(-1, size).mean(axis=1) - np.mean(train))


def typicality_from_scores(
    train_scores: Array | Sequence[float],
    batch_scores: Sequence[Array | Sequence[float]],
    *,
    alpha: float = 0.01,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> TypicalityResult:
    """Nalisnick et al. (2019b)'s typicality test on negative log-likelihoods already scored.

    H_hat = mean of ``train_scores``; each batch's statistic is ``|mean of its scores - H_hat|``.
    The threshold is the (1 - ``alpha``) quantile of the same statistic over ``n_bootstrap``
    batches of the same size M drawn with replacement from ``train_scores``; a batch above
    it is out of distribution, whether its images are *less* or *more* likely than typical.
    Taught in notebook 15_out_of_distribution.
    """
    train = _check_scores(train_scores, "train_scores")
    batches = [_check_scores(b, f"batch_scores[{i}]") for i, b in enumerate(batch_scores)]
    sizes = {len(b) for b in batches}
    if len(sizes) != 1:
        raise ValueError(
            f"the test batches must all have the same size M (the threshold depends on it), "
            f"got sizes {sorted(sizes) or 'none'}; pass at least one batch, all of one size."
        )
    alpha = check_finite_number(alpha, "alpha", exclusive=True, fix="e.g. alpha=0.01.")
    if alpha >= 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}; e.g. 0.01.")
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", 1, fix="e.g. n_bootstrap=1000.")
    size = sizes.pop()
    entropy = float(np.mean(train))
    rng = np.random.default_rng(check_int(seed, "seed", 0))
    bootstrap = train[rng.integers(0, len(train), size=n_bootstrap * size)]
    threshold = float(np.quantile(_batch_statistics(train, bootstrap, size), 1.0 - alpha))
    statistic = _batch_statistics(train, np.concatenate(batches), size)
    return TypicalityResult(statistic, threshold, statistic > threshold, entropy)


def typicality_test(
    model: keras.Model,
    train_images: Array,
    test_batches: Sequence[Array],
    *,
    alpha: float = 0.01,
    n_bootstrap: int = 1000,
    k: int = 100,
    seed: int = 0,
    batch_size: int = 100,
) -> TypicalityResult:
    """:func:`typicality_from_scores` on the model's NLLs (:func:`negative_log_likelihood_scores`,
    scored on ``train_images`` first, then on each batch in turn).

    A test of a *batch* of M images, not of one image. Taught in notebook
    15_out_of_distribution.
    """
    nll = functools.partial(
        negative_log_likelihood_scores, model, k=k, seed=seed, batch_size=batch_size
    )
    train = nll(train_images)
    scored = [nll(batch) for batch in test_batches]
    return typicality_from_scores(train, scored, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)


# --------------------------------------------------------------------------------------------
# All scores at once


def ood_table(
    model: keras.Model,
    in_images: Array,
    out_images: Array,
    *,
    k: int = 100,
    samples: int = 10,
    background_model: keras.Model | None = None,
    train_images: Array | None = None,
    typicality_batch: int = 10,
    level: float = 0.95,
    seed: int | None = None,
    batch_size: int = 100,
) -> list[dict]:
    """Each score's AUROC with its interval, one dict per score: ``{"score", "auroc", "low",
    "high", "in_mean", "out_mean"}``.

    The per-image scores: "negative_log_likelihood" (bits per pixel), "complexity_corrected",
    "reconstruction_probability" and, given a ``background_model``, "likelihood_ratio".
    Given ``train_images``, also "typicality": the typicality statistic of each run of
    ``typicality_batch`` consecutive images (on their bits per pixel), so its AUROC compares
    batches, not images. Taught in notebook 15_out_of_distribution.
    """

    def scores(images: Array) -> dict[str, np.ndarray]:
        bits = negative_log_likelihood_scores(
            model, images, k, unit="bits_per_dim", seed=seed, batch_size=batch_size
        )
        found = {
            "negative_log_likelihood": bits,
            "complexity_corrected": _minus_complexity(bits, images),
            "reconstruction_probability": reconstruction_probability_scores(
                model, images, samples, seed=seed, batch_size=batch_size
            ),
        }
        if background_model is not None:
            found["likelihood_ratio"] = likelihood_ratio_scores(
                model, background_model, images, k, seed=seed, batch_size=batch_size
            )
        return found

    size = check_int(typicality_batch, "typicality_batch", 1, fix="e.g. 10 images.")
    if train_images is not None and min(len(in_images), len(out_images)) < 2 * size:
        raise ValueError(
            f"the typicality row needs at least 2 batches of typicality_batch={size} images on "
            "each side; pass more images or a smaller typicality_batch."
        )
    inside, outside = scores(in_images), scores(out_images)
    if train_images is not None:
        train = negative_log_likelihood_scores(
            model, train_images, k, unit="bits_per_dim", seed=seed, batch_size=batch_size
        )
        for found in (inside, outside):
            found["typicality"] = _batch_statistics(train, found["negative_log_likelihood"], size)
    rows = []
    for name in inside:
        area, low, high = auroc_interval(inside[name], outside[name], level)
        rows.append(
            {
                "score": name,
                "auroc": area,
                "low": low,
                "high": high,
                "in_mean": float(np.mean(inside[name])),
                "out_mean": float(np.mean(outside[name])),
            }
        )
    return rows
