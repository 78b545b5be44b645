"""What the hidden tests use while nbgrader grades: references the student never sees.

nbgrader_config.py puts this folder on the grading kernel's ``sys.path``; students' own
kernels do not have it, and only hidden tests (removed from the released notebooks) import it.

- ``package_disabled(...)``: while active, the named ``vae_tutorial`` functions raise, so an
  answer that calls the package instead of implementing the formula fails. The functions'
  code objects are swapped, which also catches aliases (``kl = vt.kl_divergence``,
  ``from vae_tutorial import kl_divergence``) and classes that wrap the package's models.
- ``replaced(namespace, **names)``: grade one part with the reference versions of the other
  parts plugged in, so that a mistake is charged to its own part only.
- the references: written from the formulas, not taken from ``vae_tutorial``.
"""

from __future__ import annotations

import contextlib
import importlib
import math

import numpy as np
import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def _calls_the_package(*args, **kwargs):
    raise AssertionError(
        "this answer calls vae_tutorial's own implementation; write the computation yourself"
    )


def _resolve(dotted: str):
    """``"losses.kl_divergence"`` or ``"models.VAE.call"`` -> the function object."""
    parts = dotted.split(".")
    obj = importlib.import_module(f"vae_tutorial.{parts[0]}")
    for part in parts[1:]:
        obj = getattr(obj, part)
    return getattr(obj, "python_function", obj)  # a tf.function's plain function


@contextlib.contextmanager
def package_disabled(*dotted_names: str):
    """Make the named ``vae_tutorial`` functions raise while the block runs."""
    functions = [_resolve(name) for name in dotted_names]
    saved = [f.__code__ for f in functions]
    try:
        for f in functions:
            f.__code__ = _calls_the_package.__code__
        yield
    finally:
        for f, code in zip(functions, saved, strict=True):
            f.__code__ = code


@contextlib.contextmanager
def replaced(namespace: dict, **names):
    """Bind ``names`` in ``namespace`` (the notebook's globals) while the block runs."""
    missing = object()
    saved = {name: namespace.get(name, missing) for name in names}
    namespace.update(names)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


def defined_outside_the_package(cls) -> bool:
    """True when neither ``cls`` nor any of its bases comes from ``vae_tutorial``."""
    return not any(base.__module__.startswith("vae_tutorial") for base in cls.__mro__)


# -- references (assignment 01 and 05) ------------------------------------------------------


def reparameterize(mu, log_var, eps=None, seed=None):
    mu = tf.convert_to_tensor(mu, tf.float32)
    log_var = tf.convert_to_tensor(log_var, tf.float32)
    if eps is None:
        eps = tf.keras.random.normal(tuple(mu.shape), seed=seed)
    return mu + tf.sqrt(tf.exp(log_var)) * eps


def log_normal(z, mu, log_var):
    z = tf.convert_to_tensor(z, tf.float32)
    mu = tf.cast(mu, tf.float32)
    log_var = tf.cast(log_var, tf.float32)
    return tf.reduce_sum(
        -0.5 * (LOG_2PI + log_var) - 0.5 * tf.square(z - mu) / tf.exp(log_var), axis=-1
    )


def log_mean_exp(log_w, axis=0):
    log_w = tf.convert_to_tensor(log_w, tf.float32)
    top = tf.reduce_max(log_w, axis=axis, keepdims=True)
    mean = tf.reduce_mean(tf.exp(log_w - top), axis=axis)
    return tf.math.log(mean) + tf.squeeze(top, axis)


# -- references (assignment 02) ---------------------------------------------------------------


def kl_divergence(mu, log_var):
    """KL(N(mu, sigma^2) || N(0, 1)) = -log sigma + (sigma^2 + mu^2) / 2 - 1/2, summed."""
    mu = tf.convert_to_tensor(mu, tf.float32)
    log_sigma = 0.5 * tf.convert_to_tensor(log_var, tf.float32)
    return tf.reduce_sum(-log_sigma + 0.5 * (tf.exp(2.0 * log_sigma) + mu**2) - 0.5, axis=-1)


def bernoulli_log_likelihood(x, logits):
    """sum_pixels log Bernoulli(x; sigmoid(logits)) = -sum softplus(-logits) - (1 - x) logits."""
    logits = tf.convert_to_tensor(logits, tf.float32)
    x = tf.cast(x, tf.float32)
    return tf.reduce_sum(-tf.nn.softplus(-logits) - (1.0 - x) * logits, axis=-1)


# -- references and probes (assignment 03) ----------------------------------------------------


class ConstantEncoder(tf.keras.Model):
    """An encoder whose posterior is N(mu, exp(log_var)) for every image (log 0.25 by default)."""

    def __init__(self, latent_dim, *args, mu=3.0, log_var=-1.3862944, **kwargs):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.mu_value = self.add_weight(shape=(), initializer=tf.keras.initializers.Constant(mu))
        self.log_var_value = float(log_var)

    def call(self, x):
        ones = tf.ones([tf.shape(x)[0], self.latent_dim])
        return self.mu_value * ones, self.log_var_value * ones


class IdentityDecoder(tf.keras.Model):
    """A decoder that returns its input: the VAE's logits are then the sampled z itself."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def call(self, z):
        return tf.identity(z)


def dense_forward(x, kernel, bias, relu):
    h = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)
    return np.maximum(h, 0.0) if relu else h


# -- references and probes (assignment 04) ----------------------------------------------------


class DeterministicVAE(tf.keras.Model):
    """A small VAE with z = mu (no noise), so that two training steps can be compared exactly."""

    def __init__(self, latent_dim=2, hidden=8, input_dim=12):
        super().__init__()
        self.hidden = tf.keras.layers.Dense(hidden, activation="tanh")
        self.mu = tf.keras.layers.Dense(latent_dim)
        self.log_var = tf.keras.layers.Dense(latent_dim)
        self.out = tf.keras.layers.Dense(input_dim)

    def call(self, x, training=False):
        h = self.hidden(x)
        mu, log_var = self.mu(h), self.log_var(h)
        return self.out(mu), mu, log_var


def negative_elbo(x, logits, mu, log_var):
    return tf.reduce_mean(-bernoulli_log_likelihood(x, logits) + kl_divergence(mu, log_var))


def reference_sgd_step(model, x, learning_rate):
    """One plain gradient-descent step on the negative ELBO; returns the loss before it."""
    with tf.GradientTape() as tape:
        loss = negative_elbo(x, *model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients, strict=True):
        variable.assign_sub(learning_rate * gradient)
    return float(loss)


# -- a model with an exact log p(x) (assignment 05) -------------------------------------------


class LinearGaussian:
    """z ~ N(0, 1), x | z ~ N(z, s2) in one dimension: log p(x) = log N(x; 0, 1 + s2).

    ``exact=True`` encodes with the true posterior N(x / (1 + s2), s2 / (1 + s2)), for which
    every importance weight equals p(x); otherwise with the prior N(0, 1).
    """

    def __init__(self, s2, exact):
        self.s2, self.exact = float(s2), exact

    def encode(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        if self.exact:
            mu = x / (1.0 + self.s2)
            return mu, tf.fill(tf.shape(x), math.log(self.s2 / (1.0 + self.s2)))
        return tf.zeros_like(x), tf.zeros_like(x)

    def log_likelihood(self, x, z):
        x = tf.convert_to_tensor(x, tf.float32)
        log_density = -0.5 * (LOG_2PI + math.log(self.s2)) - (x - z) ** 2 / (2 * self.s2)
        return tf.reduce_sum(log_density, axis=-1)

    def log_px(self, x):
        v = 1.0 + self.s2
        return -0.5 * (LOG_2PI + math.log(v)) - np.asarray(x, np.float64)[:, 0] ** 2 / (2 * v)

    def elbo_with_prior(self, x):
        """E_{z ~ N(0,1)} log N(x; z, s2) in closed form: the ELBO when q is the prior."""
        x = np.asarray(x, np.float64)[:, 0]
        return -0.5 * (LOG_2PI + math.log(self.s2)) - (x**2 + 1.0) / (2 * self.s2)


# -- references and probes (assignment 06) ----------------------------------------------------


def slerp(z0, z1, t):
    """sin((1-t) W) / sin W z0 + sin(t W) / sin W z1, W the angle between z0 and z1.

    The angle comes from atan2 (accurate for any angle) and each weight sin(a W) / sin W is
    written a sinc(a W / pi) / sinc(W / pi), which tends to a as W -> 0: no branch, no 0 / 0.
    """
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.asarray(t, np.float64)
    u0 = z0 / np.linalg.norm(z0, axis=-1, keepdims=True)
    along = np.sum(z1 * u0, axis=-1, keepdims=True)
    across = np.linalg.norm(z1 - along * u0, axis=-1, keepdims=True)
    omega = np.arctan2(across, along)
    w0 = (1 - t) * np.sinc((1 - t) * omega / np.pi) / np.sinc(omega / np.pi)
    w1 = t * np.sinc(t * omega / np.pi) / np.sinc(omega / np.pi)
    return w0 * z0 + w1 * z1


def angle(a, b):
    """The angle between the rows of a and b, from atan2 (accurate near 0 too)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cross = np.linalg.norm(
        a * np.linalg.norm(b, axis=-1, keepdims=True)
        - b * np.linalg.norm(a, axis=-1, keepdims=True),
        axis=-1,
    )
    plus = np.linalg.norm(
        a * np.linalg.norm(b, axis=-1, keepdims=True)
        + b * np.linalg.norm(a, axis=-1, keepdims=True),
        axis=-1,
    )
    return 2.0 * np.arctan2(cross, plus)  # Kahan's formula


def unit_activity(mu):
    """A_j = mean over the N images of (mu_nj - mean_n mu_nj)^2, per latent dimension."""
    mu = np.asarray(mu, np.float64)
    return np.mean((mu - mu.mean(axis=0)) ** 2, axis=0)


class DesignedEncoder:
    """``encode(x) -> (mu, log_var)`` row by row: mu = x[:, :d] * scales, log_var =
    x[:, :d] * log_var_scales - 1 (float32 tensors, as a model's encode returns). With the
    columns of x standardized over the images, unit j's activity is exactly scales[j]**2."""

    def __init__(self, scales, log_var_scales):
        self.scales = np.asarray(scales, np.float64)
        self.log_var_scales = np.asarray(log_var_scales, np.float64)

    def __call__(self, x):
        x = np.asarray(x, np.float64)[:, : len(self.scales)]
        mu, log_var = x * self.scales, x * self.log_var_scales - 1.0
        return tf.constant(mu, tf.float32), tf.constant(log_var, tf.float32)


def standardized(rng, n, d):
    """n rows of d columns, each column of mean 0 and variance 1 exactly (over the rows)."""
    x = rng.normal(size=(n, d))
    return (x - x.mean(axis=0)) / x.std(axis=0)


def mixture_moments(mu, log_var):
    """Mean and variance of q(z) = 1/N sum_n N(mu_n, diag exp(log_var_n)), per dimension,
    as E[z] and E[z^2] - E[z]^2 with E[z^2] = mean_n (mu_n^2 + sigma_n^2)."""
    mu, var = np.asarray(mu, np.float64), np.exp(np.asarray(log_var, np.float64))
    mean = mu.mean(axis=0)
    return mean, np.mean(mu**2 + var, axis=0) - mean**2


def mixture_draws(rng, mu, log_var, n):
    """n draws from the mixture: a component chosen uniformly, then z from it."""
    mu, sd = np.asarray(mu, np.float64), np.exp(0.5 * np.asarray(log_var, np.float64))
    which = rng.integers(0, len(mu), size=n)
    return mu[which] + sd[which] * rng.standard_normal((n, mu.shape[1]))


# -- references (assignment 07) ---------------------------------------------------------------


def conv_output_size(n, kernel, stride, padding):
    return -(-n // stride) if padding == "same" else (n - kernel) // stride + 1


def conv_transpose_output_size(n, kernel, stride, padding):
    return n * stride if padding == "same" else n * stride + max(kernel - stride, 0)


def _same_padding(n, kernel, stride, out):
    """TensorFlow's "same" padding of a convolution from n to out: (before, after)."""
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def conv2d(x, kernel, bias, stride, padding, relu=False):
    """A Keras ``Conv2D`` in numpy (float64): x (batch, h, w, c_in), kernel (k, k, c_in, c_out).

    out[o] = sum over kernel positions i of x_padded[o * stride + i] @ kernel[i] + bias.
    """
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    k = kernel.shape[0]
    (n_h, n_w), sides = x.shape[1:3], []
    for n in (n_h, n_w):
        sides.append(conv_output_size(n, k, stride, padding))
    if padding == "same":
        pads = [_same_padding(n, k, stride, m) for n, m in zip((n_h, n_w), sides, strict=True)]
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out_h, out_w = sides
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[3]))
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (out_h - 1) + 1, stride)
            cols = slice(j, j + stride * (out_w - 1) + 1, stride)
            out += x[:, rows, cols, :] @ kernel[i, j]
    out += np.asarray(bias, np.float64)
    return np.maximum(out, 0.0) if relu else out


def conv2d_transpose(x, kernel, bias, stride, padding, relu=False):
    """A Keras ``Conv2DTranspose`` in numpy (float64): kernel (k, k, c_out, c_in).

    The adjoint of ``conv2d``: every input pixel p adds x[p] @ kernel[i].T at output position
    p * stride + i - (the "same" padding before), for each kernel position i.
    """
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    k = kernel.shape[0]
    n_h, n_w = x.shape[1:3]
    full = np.zeros(
        (x.shape[0], (n_h - 1) * stride + max(k, stride), (n_w - 1) * stride + max(k, stride))
        + (kernel.shape[2],)
    )
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (n_h - 1) + 1, stride)
            cols = slice(j, j + stride * (n_w - 1) + 1, stride)
            full[:, rows, cols, :] += x @ kernel[i, j].T
    out_h = conv_transpose_output_size(n_h, k, stride, padding)
    out_w = conv_transpose_output_size(n_w, k, stride, padding)
    top = _same_padding(out_h, k, stride, n_h)[0] if padding == "same" else 0
    left = _same_padding(out_w, k, stride, n_w)[0] if padding == "same" else 0
    out = full[:, top : top + out_h, left : left + out_w, :] + np.asarray(bias, np.float64)
    return np.maximum(out, 0.0) if relu else out


def weights_by_shape(model):
    """The model's trainable weights as numpy arrays, grouped by shape in creation order."""
    found = {}
    for v in model.trainable_variables:
        found.setdefault(tuple(v.shape), []).append(np.asarray(v.numpy(), np.float64))
    return found


def randomize_weights(model, seed, scale=0.3):
    """Give every weight, biases included, a random value (Keras starts biases at 0)."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign((scale * rng.normal(size=v.shape)).astype(v.dtype))


# -- references and probes (assignment 10_conditional) ----------------------------------------


LOG_QUARTER = math.log(0.25)  # the stand-in posterior's log-variance before the class shift


def conditional_input(x, labels, num_classes):
    """[flattened x, one-hot y] in float64: what a conditional network's first layer sees."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    return np.concatenate([x, np.eye(num_classes)[np.asarray(labels)]], axis=1)


def conditional_constant_posterior(labels, latent_dim, mu=0.4, log_var=LOG_QUARTER):
    """What ConditionalConstantEncoder returns for ``labels``, in float64."""
    y = np.asarray(labels, np.float64)[:, None]
    ones = np.ones((len(y), latent_dim))
    return (mu + 0.5 * y) * ones, (log_var - 0.1 * y) * ones


class ConditionalConstantEncoder(tf.keras.Model):
    """q(z | x, y) = N(mu + y / 2, exp(log_var - y / 10)) in every dimension, whatever x is."""

    def __init__(self, latent_dim, *args, mu=0.4, log_var=LOG_QUARTER, **kwargs):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.mu_value = self.add_weight(shape=(), initializer=tf.keras.initializers.Constant(mu))
        self.log_var_value = float(log_var)

    def call(self, batch):
        x, labels = batch
        y = tf.cast(labels, tf.float32)[:, None]
        ones = tf.ones([tf.shape(x)[0], self.latent_dim])
        return (self.mu_value + 0.5 * y) * ones, (self.log_var_value - 0.1 * y) * ones


class ConditionalShiftDecoder(tf.keras.Model):
    """p(x | z, y) with logits z - 0.3 y: the code itself, shifted by the class."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def call(self, batch):
        z, labels = batch
        return z - 0.3 * tf.cast(labels, z.dtype)[:, None]


def negative_elbo_per_example(x, logits, mu, log_var):
    """-log p(x | z) + KL(N(mu, exp(log_var)) || N(0, I)) per example, in float64 numpy:
    the Bernoulli cross-entropy from logits and the closed-form KL."""
    x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    mu, log_var = np.asarray(mu, np.float64), np.asarray(log_var, np.float64)
    reconstruction = -np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)
    kl = np.sum(-0.5 * log_var + 0.5 * (np.exp(log_var) + mu**2) - 0.5, axis=-1)
    return reconstruction + kl


# -- references (assignment 11_data_parallel) -------------------------------------------------


def replica_loss(per_example_losses, global_batch_size):
    """A replica's share of the batch mean: its per-example losses' sum over the global size."""
    per_example_losses = tf.convert_to_tensor(per_example_losses, tf.float32)
    return tf.reduce_sum(per_example_losses) / tf.cast(global_batch_size, tf.float32)


def replica_shares(global_batch_size, num_replicas):
    """tf.distribute's split of a global batch: ceil(B / R) images per replica, in replica
    order, until the batch runs out (10 on 3 replicas: 4, 4, 2)."""
    per_replica = -(-global_batch_size // num_replicas)
    return [
        max(0, min(per_replica, global_batch_size - r * per_replica)) for r in range(num_replicas)
    ]


def step_batch_sizes(n_images, global_batch_size):
    """The global batch of each step of an epoch: full batches, then the rest if any."""
    full, rest = divmod(n_images, global_batch_size)
    return [global_batch_size] * full + ([rest] if rest else [])


def linear_mean_gradients(x, y, w, b):
    """Gradients of (1/B) sum_i ||x_i w + b - y_i||^2 with respect to w and b, in closed form."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    residual = x @ np.asarray(w, np.float64) + np.asarray(b, np.float64) - y
    return 2.0 * x.T @ residual / len(x), 2.0 * residual.sum(axis=0) / len(x)


# -- references (assignment 08_likelihoods) --------------------------------------------------


def _bernoulli_integrand(eta: float):
    """x -> lambda^x (1 - lambda)^(1 - x) = exp(x log lambda + (1 - x) log(1 - lambda)),
    lambda = sigmoid(eta), with both logarithms computed from the logit (no log 0)."""
    log_lam, log_rest = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    return lambda x: math.exp(x * log_lam + (1.0 - x) * log_rest)


def continuous_bernoulli_log_normalizer(eta) -> float:
    """log C(lambda) = -log of the integral over [0, 1] of lambda^x (1 - lambda)^(1 - x), by
    quadrature in float64. Beyond |eta| = 200, where tanh(eta / 2) = 1 in float64, the closed
    form log C = log|eta| - log tanh(|eta| / 2) is log|eta|."""
    from scipy import integrate

    eta = float(eta)
    if abs(eta) > 200.0:
        return math.log(abs(eta))
    mass = integrate.quad(_bernoulli_integrand(eta), 0.0, 1.0, epsabs=0.0, epsrel=1e-13)[0]
    return -math.log(mass)


def continuous_bernoulli_log_normalizer_gradient(eta) -> float:
    """d log C / d eta = lambda - E[x], E[x] the continuous Bernoulli's mean, by quadrature
    (log C = -log of the integral of (1 - lambda) e^(eta x)); 1 / eta beyond |eta| = 200."""
    from scipy import integrate, special

    eta = float(eta)
    if abs(eta) > 200.0:
        return 1.0 / eta
    f = _bernoulli_integrand(eta)
    mass = integrate.quad(f, 0.0, 1.0, epsabs=0.0, epsrel=1e-13)[0]
    first = integrate.quad(lambda x: x * f(x), 0.0, 1.0, epsabs=0.0, epsrel=1e-13)[0]
    return float(special.expit(eta)) - first / mass


def _bin_edges(k):
    """The bin of level k on the scale of x = k / 255; level 0 open to -inf, 255 to +inf."""
    k = np.asarray(k, np.float64)
    return np.where(k > 0, (k - 0.5) / 255, -np.inf), np.where(k < 255, (k + 0.5) / 255, np.inf)


def discretized_logistic_prob(k, mean, scale):
    """P(k) = F(upper) - F(lower) from scipy's logistic CDF, in float64."""
    from scipy import stats

    lower, upper = _bin_edges(k)
    return stats.logistic.cdf(upper, mean, scale) - stats.logistic.cdf(lower, mean, scale)


def discretized_logistic_log_prob(k, mean, scale):
    """log P(k) from scipy's logistic in float64, accurate in the tails: the CDF difference
    in log space, from logcdf below the mean and from logsf (1 - F) above it."""
    from scipy import stats

    lower, upper = _bin_edges(k)
    lower, upper, mean, scale = np.broadcast_arrays(lower, upper, mean, scale)
    logistic = stats.logistic(mean, scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        low_cdf, up_cdf = logistic.logcdf(lower), logistic.logcdf(upper)
        low_sf, up_sf = logistic.logsf(lower), logistic.logsf(upper)
        by_cdf = up_cdf + np.log1p(-np.exp(low_cdf - up_cdf))
        by_sf = low_sf + np.log1p(-np.exp(up_sf - low_sf))
    return np.where(lower > mean, by_sf, by_cdf)


# -- references (assignment 09_collapse) -----------------------------------------------------


def kl_per_dimension(mu, log_var):
    """KL(N(mu_j, sigma_j^2) || N(0, 1)) per dimension = -log sigma + (sigma^2 + mu^2) / 2 - 1/2."""
    mu = tf.convert_to_tensor(mu, tf.float32)
    log_sigma = 0.5 * tf.convert_to_tensor(log_var, tf.float32)
    return -log_sigma + 0.5 * (tf.exp(2.0 * log_sigma) + tf.square(mu)) - 0.5


def gaussian_kl(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) of two univariate Gaussians, elementwise, in float64."""
    m1, v1, m2, v2 = (np.asarray(a, np.float64) for a in (m1, v1, m2, v2))
    return 0.5 * (np.log(v2) - np.log(v1)) + (v1 + (m1 - m2) ** 2) / (2.0 * v2) - 0.5


def kl_by_integration(mu, sd) -> float:
    """KL(N(mu, sd^2) || N(0, 1)) as the integral of q log(q / p) over mu +- 12 sd, by
    Simpson's rule on 4,001 points with scipy's densities (an error far below 1e-9)."""
    from scipy import integrate, stats

    mu, sd = float(mu), float(sd)
    z = np.linspace(mu - 12.0 * sd, mu + 12.0 * sd, 4001)
    log_q = stats.norm.logpdf(z, mu, sd)
    return float(integrate.simpson(np.exp(log_q) * (log_q - stats.norm.logpdf(z)), x=z))


def mutual_information(mu, log_var, eps) -> float:
    """The minibatch estimate of I(x; z) by brute force in float64: z_n = mu_n + sigma_n eps_n,
    mean over n of log q(z_n | x_n) - log (1/N) sum_m q(z_n | x_m), one image at a time."""
    from scipy import special, stats

    mu, log_var, eps = (np.asarray(a, np.float64) for a in (mu, log_var, eps))
    sd = np.exp(0.5 * log_var)
    z = mu + sd * eps
    terms = []
    for n in range(len(mu)):
        log_q = stats.norm.logpdf(z[n], mu, sd).sum(axis=-1)  # log q(z_n | x_m), every m
        terms.append(log_q[n] - (special.logsumexp(log_q) - math.log(len(mu))))
    return float(np.mean(terms))
