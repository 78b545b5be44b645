"""Decoder likelihoods p(x | z) for grey pixels, and bits per dimension.

One object per distribution. Each knows how many decoder outputs it needs per pixel
(``params_per_pixel``), which data it models (``binarize_modes``: binary draws, grey levels
with uniform dequantization, or the exact 8-bit levels), ``log_prob(x, output)`` summed over
pixels (shape ``(batch,)``, nats), its ``mean`` (the images ``reconstruct`` and ``sample``
show) and how to ``sample``. The decoder's output holds the parameters one after the other
along its last axis: ``split(output)`` cuts it into ``params_per_pixel`` tensors of x's shape.

- "bernoulli" (the default): logits; a proper likelihood of 0/1 pixels only.
- "continuous_bernoulli": the Bernoulli made a density on [0, 1] by its normalizer C(lambda)
  (Loaiza-Ganem & Cunningham, NeurIPS 2019).
- "gaussian": N(x; mean, sigma^2) with a fixed sigma; -log p is MSE / (2 sigma^2) plus a
  constant, so MSE + beta * KL is this ELBO with a hidden beta = 2 sigma^2.
- "gaussian_learned_variance": the decoder also outputs a per-pixel scale.
- "discretized_logistic": a probability for each of the 256 levels k / 255 (Salimans et al.,
  2017, PixelCNN++, with one logistic instead of a mixture).

Taught in notebook 08_likelihoods_for_grey_pixels.
"""

from __future__ import annotations

import inspect
import math

import keras
import tensorflow as tf

from vae_tutorial.losses import LOG_2PI, bernoulli_log_likelihood, sum_over_pixels
from vae_tutorial.types_ import Seed, TensorLike
from vae_tutorial.validation import (
    check_choice,
    check_finite_number,
    check_pixels,
    check_same_shape,
)

LEVELS = 256  # 8-bit pixels: k = 0, 1, ..., 255
_SERIES_LIMIT = 0.1  # |logit| below which the continuous Bernoulli uses its Taylor series


def positive_scale(raw: tf.Tensor, min_scale: float) -> tf.Tensor:
    """A decoder output made a scale: ``softplus(raw) + min_scale``, smooth and > 0.

    The floor keeps a density from growing without bound on pixels it predicts perfectly.
    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    return tf.nn.softplus(raw) + tf.cast(min_scale, raw.dtype)


def continuous_bernoulli_log_normalizer(logits: TensorLike) -> tf.Tensor:
    """log C(lambda) per pixel, lambda = sigmoid(logits), finite for every logit.

    C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) makes lambda^x (1 - lambda)^(1 - x)
    integrate to 1 over [0, 1]. With eta = logit(lambda) and t = eta / 2 it is
    eta / tanh(t), so log C = log|eta| - log tanh|t|. At eta = 0 that is 0/0 (and its
    gradient cancels badly nearby), so for |eta| < 0.1 the Taylor series
    log 2 + t^2/3 - 7 t^4/90 + 62 t^6/2835 is used instead (its error is below 1e-12).
    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    logits = tf.convert_to_tensor(logits)
    near_half = tf.abs(logits) < _SERIES_LIMIT
    # Each branch sees only inputs it handles, so neither yields NaN (nor a NaN gradient).
    eta = tf.where(near_half, tf.ones_like(logits), tf.abs(logits))
    t2 = tf.square(tf.where(near_half, logits, tf.zeros_like(logits)) / 2.0)
    direct = tf.math.log(eta) - tf.math.log(tf.tanh(eta / 2.0))
    series = math.log(2.0) + t2 * (1.0 / 3.0 + t2 * (-7.0 / 90.0 + t2 * 62.0 / 2835.0))
    return tf.where(near_half, series, direct)


def continuous_bernoulli_mean(logits: TensorLike) -> tf.Tensor:
    """E[x] per pixel: 1/2 + L(eta / 2) / 2 with L(t) = coth t - 1/t (Langevin's function).

    The same as lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)); for |eta| < 0.1,
    L(t) = t/3 - t^3/45 + 2 t^5/945. Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    logits = tf.convert_to_tensor(logits)
    near_half = tf.abs(logits) < _SERIES_LIMIT
    t = tf.where(near_half, tf.ones_like(logits), logits) / 2.0
    s = tf.where(near_half, logits, tf.zeros_like(logits)) / 2.0
    direct = 1.0 / tf.tanh(t) - 1.0 / t
    series = s * (1.0 / 3.0 + tf.square(s) * (-1.0 / 45.0 + tf.square(s) * 2.0 / 945.0))
    return 0.5 + 0.5 * tf.where(near_half, series, direct)


def discretized_logistic_log_prob(x: TensorLike, mean: TensorLike, scale: TensorLike) -> tf.Tensor:
    """log P(k) per pixel of the level k = round(255 x) under a discretized logistic.

    P(k) = F(b) - F(a), F the logistic CDF sigmoid((y - mean) / scale), over the bin
    [a, b] = [(k - 1/2) / 255, (k + 1/2) / 255], the first bin open to -inf and the last to
    +inf, so the 256 probabilities sum to 1. Computed as
    log sigmoid(b') + log sigmoid(-a') + log(1 - exp(a' - b')), a', b' the standardized
    edges, with the first and last bins' missing term left out: no log(0), no cancellation.
    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    scale = tf.convert_to_tensor(scale)
    x = tf.cast(x, scale.dtype)
    k = tf.round(x * (LEVELS - 1))
    half_bin = 0.5 / (LEVELS - 1)
    lower = (x - half_bin - mean) / scale
    upper = (x + half_bin - mean) / scale
    zero = tf.zeros_like(lower)
    below_top = tf.where(k < LEVELS - 1, tf.math.log_sigmoid(upper), zero)
    above_bottom = tf.where(k > 0, tf.math.log_sigmoid(-lower), zero)
    middle = tf.where((k > 0) & (k < LEVELS - 1), tf.math.log(-tf.math.expm1(lower - upper)), zero)
    return below_top + above_bottom + middle


def bits_per_dim(
    log_likelihood: TensorLike, dims: int = 784, dequantized: bool = False
) -> TensorLike:
    """Nats per image -> bits per pixel: -log_likelihood / (dims * ln 2).

    For a density on [0, 1]^D scored on dequantized 8-bit data y = (k + u) / 256, u ~ U[0, 1),
    add log2(256) = 8: the probability of the levels k is the density's mass on their cell,
    P(k) = integral over the cell of p(y) dy >= 256^-D exp(E_u log p(y)) by Jensen, so
    -log2 P(k) / D <= -E_u log2 p(y) / D + 8 (Theis, van den Oord & Bethge, ICLR 2016).
    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    offset = math.log2(LEVELS) if dequantized else 0.0
    return -log_likelihood / (dims * math.log(2.0)) + offset


def _uniform(shape, dtype, seed):
    return keras.random.uniform(shape, dtype=dtype, seed=seed)


class Likelihood:
    """A decoder distribution; see the module docstring for the interface."""

    name: str = ""
    params_per_pixel = 1
    binarize_modes: tuple[str, ...] = ("dequantize",)
    why_this_data = (
        "it is a density on [0, 1], so it scores grey levels spread over their 8-bit cell by "
        "uniform noise (dequantization); on exact levels a density can grow without bound"
    )

    @property
    def scores_data(self) -> tuple[str, ...]:
        """The binarize modes on whose data log_prob is a true log-likelihood (in bits per
        pixel comparable across models): all the modes it trains on, but for the Bernoulli."""
        return self.binarize_modes

    def split(self, output: TensorLike) -> list[tf.Tensor]:
        """The decoder output cut into ``params_per_pixel`` tensors, each of x's shape."""
        output = tf.convert_to_tensor(output)
        if self.params_per_pixel == 1:
            return [output]
        return tf.split(output, self.params_per_pixel, axis=-1)

    def log_prob(self, x: TensorLike, output: TensorLike) -> tf.Tensor:
        """log p(x | z) per example, summed over pixels, shape ``(batch,)``, in nats."""
        output = tf.convert_to_tensor(output)
        x = tf.cast(x, output.dtype)
        params = self.split(output)
        check_same_shape(x, params[0])
        return sum_over_pixels(self.pixel_log_prob(check_pixels(x), *params))

    def pixel_log_prob(self, x: tf.Tensor, *params: tf.Tensor) -> tf.Tensor:
        """log p per pixel from x and the split decoder output (each subclass's formula)."""
        raise NotImplementedError

    def mean(self, output: TensorLike) -> tf.Tensor:
        """The distribution's mean per pixel: the images ``reconstruct`` and ``sample`` show."""
        raise NotImplementedError

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        """A draw x ~ p(x | z) per pixel, of x's shape."""
        raise NotImplementedError

    def get_config(self) -> str | dict:
        """What rebuilds this likelihood with :func:`get_likelihood`: its name."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()!r})"


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with the given logits: the series' default."""

    name = "bernoulli"
    binarize_modes = ("dynamic", "static", "none", "dequantize")
    scores_data = ("dynamic", "static")  # on grey values it is a cross-entropy, no likelihood

    def log_prob(self, x: TensorLike, output: TensorLike) -> tf.Tensor:
        return bernoulli_log_likelihood(x, output)

    def mean(self, output: TensorLike) -> tf.Tensor:
        return tf.sigmoid(output)

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        output = tf.convert_to_tensor(output)
        draw = _uniform(tf.shape(output), output.dtype, seed) < tf.sigmoid(output)
        return tf.cast(draw, output.dtype)


class ContinuousBernoulli(Likelihood):
    """The Bernoulli's x log lambda + (1 - x) log(1 - lambda) plus log C(lambda) per pixel."""

    name = "continuous_bernoulli"

    def log_prob(self, x: TensorLike, output: TensorLike) -> tf.Tensor:
        output = tf.convert_to_tensor(output)
        log_c = sum_over_pixels(continuous_bernoulli_log_normalizer(output))
        return bernoulli_log_likelihood(x, output) + log_c

    def mean(self, output: TensorLike) -> tf.Tensor:
        return continuous_bernoulli_mean(output)

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        """By the inverse CDF: x = log(1 + u (e^eta - 1)) / eta, written for eta <= 0 and
        mirrored (x(eta, u) = 1 - x(-eta, 1 - u)), so nothing overflows; for |eta| < 1e-3,
        its expansion x = u + eta u (1 - u) / 2 (error below 1e-6)."""
        output = tf.convert_to_tensor(output)
        u = _uniform(tf.shape(output), output.dtype, seed)
        negative = output < 0
        u = tf.where(negative, u, 1.0 - u)
        near_half = tf.abs(output) < 1e-3
        eta = -tf.where(near_half, tf.ones_like(output), tf.abs(output))
        x = tf.math.log1p(u * tf.math.expm1(eta)) / eta
        x = tf.where(near_half, u - tf.abs(output) * u * (1.0 - u) / 2.0, x)
        return tf.clip_by_value(tf.where(negative, x, 1.0 - x), 0.0, 1.0)


class Gaussian(Likelihood):
    """N(x; mean, sigma^2) per pixel with a fixed ``sigma``; the decoder outputs the mean.

    -log p(x | z) = sum (x - mean)^2 / (2 sigma^2) + D log(sigma sqrt(2 pi)): a squared
    error, so MSE-sum + beta KL is this negative ELBO times 2 sigma^2, with beta = 2 sigma^2.
    The best fixed sigma for a trained decoder is its per-pixel RMS error (exercise 2 of
    notebook 08).
    """

    name = "gaussian"

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = check_finite_number(sigma, "sigma", exclusive=True, fix="e.g. sigma=0.1.")

    def pixel_log_prob(self, x: tf.Tensor, mean: tf.Tensor) -> tf.Tensor:
        log_sigma = math.log(self.sigma)
        return -0.5 * LOG_2PI - log_sigma - 0.5 * tf.square((x - mean) / self.sigma)

    def mean(self, output: TensorLike) -> tf.Tensor:
        return tf.convert_to_tensor(output)

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        output = tf.convert_to_tensor(output)
        return output + self.sigma * keras.random.normal(
            tf.shape(output), dtype=output.dtype, seed=seed
        )

    def get_config(self) -> str | dict:
        return self.name if self.sigma == 0.1 else {"name": self.name, "sigma": self.sigma}


class _LearnedScale(Likelihood):
    """Two outputs per pixel: a location and a raw scale, made ``softplus(raw) + min_scale``."""

    params_per_pixel = 2

    def __init__(self, min_scale: float = 1e-3) -> None:
        self.min_scale = check_finite_number(min_scale, "min_scale", exclusive=True)

    def location_and_scale(self, output: TensorLike) -> tuple[tf.Tensor, tf.Tensor]:
        location, raw_scale = self.split(output)
        return location, positive_scale(raw_scale, self.min_scale)

    def get_config(self) -> str | dict:
        if self.min_scale == 1e-3:
            return self.name
        return {"name": self.name, "min_scale": self.min_scale}


class GaussianLearnedVariance(_LearnedScale):
    """N(x; mean, sigma^2) with a per-pixel sigma = softplus(raw) + ``min_scale`` output by
    the decoder beside the mean (two outputs per pixel)."""

    name = "gaussian_learned_variance"

    def pixel_log_prob(self, x: tf.Tensor, mean: tf.Tensor, raw_scale: tf.Tensor) -> tf.Tensor:
        sigma = positive_scale(raw_scale, self.min_scale)
        return -0.5 * LOG_2PI - tf.math.log(sigma) - 0.5 * tf.square((x - mean) / sigma)

    def mean(self, output: TensorLike) -> tf.Tensor:
        return self.split(output)[0]

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        mean, sigma = self.location_and_scale(output)
        return mean + sigma * keras.random.normal(tf.shape(mean), dtype=mean.dtype, seed=seed)


class DiscretizedLogistic(_LearnedScale):
    """A probability for each 8-bit level: a logistic (mean, scale per pixel, scale =
    softplus(raw) + ``min_scale``) integrated over each level's bin. It scores the exact
    levels k / 255 (``binarize="none"``) and its log_prob is already a log-probability."""

    name = "discretized_logistic"
    binarize_modes = ("none",)
    why_this_data = (
        "it gives a probability to each exact 8-bit level k / 255, so it needs the grey "
        "levels themselves, undequantized"
    )

    def pixel_log_prob(self, x: tf.Tensor, mean: tf.Tensor, raw_scale: tf.Tensor) -> tf.Tensor:
        return discretized_logistic_log_prob(x, mean, positive_scale(raw_scale, self.min_scale))

    def mean(self, output: TensorLike) -> tf.Tensor:
        """E[k / 255] = sum_{k=1}^{255} P(K >= k) / 255 = sum_k (1 - F((k - 1/2) / 255)) / 255."""
        mean, scale = self.location_and_scale(output)
        edges = (tf.range(1, LEVELS, dtype=mean.dtype) - 0.5) / (LEVELS - 1)
        above = tf.sigmoid((mean[..., tf.newaxis] - edges) / scale[..., tf.newaxis])
        return tf.reduce_sum(above, axis=-1) / (LEVELS - 1)

    def sample(self, output: TensorLike, seed: Seed = None) -> tf.Tensor:
        """A logistic draw mean + scale * logit(u), rounded to the nearest level in [0, 1]."""
        mean, scale = self.location_and_scale(output)
        u = tf.clip_by_value(_uniform(tf.shape(mean), mean.dtype, seed), 1e-6, 1.0 - 1e-6)
        y = mean + scale * (tf.math.log(u) - tf.math.log1p(-u))
        return tf.round(tf.clip_by_value(y, 0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)


LIKELIHOODS = {
    cls.name: cls
    for cls in (
        Bernoulli,
        ContinuousBernoulli,
        Gaussian,
        GaussianLearnedVariance,
        DiscretizedLogistic,
    )
}


def get_likelihood(likelihood: str | dict | Likelihood = "bernoulli") -> Likelihood:
    """A :class:`Likelihood` from its name ("bernoulli", "gaussian", ...), a config dict such
    as ``{"name": "gaussian", "sigma": 0.2}``, or an instance (returned as it is).

    Taught in notebook 08_likelihoods_for_grey_pixels.
    """
    if isinstance(likelihood, Likelihood):
        return likelihood
    options = {}
    if isinstance(likelihood, dict):
        options = {k: v for k, v in likelihood.items() if k != "name"}
    name = likelihood.get("name") if isinstance(likelihood, dict) else likelihood
    name = check_choice(name, "likelihood", tuple(LIKELIHOODS))
    unknown = sorted(set(options) - set(inspect.signature(LIKELIHOODS[name]).parameters))
    if unknown:
        raise TypeError(
            f"likelihood {name!r} takes no option {', '.join(unknown)}; "
            "gaussian takes sigma, the learned-scale ones min_scale."
        )
    return LIKELIHOODS[name](**options)
