"""A linear-Gaussian model whose log p(x) scipy computes: shared by test_iwae.py (scoring
the importance-weighted bound) and test_iwae_training.py (training on it). A plain module,
not a test module (see helpers.py).

Probabilistic PCA: p(z) = N(0, I), p(x | z) = N(Wz + b, sigma^2 I), so p(x) = N(b, WW^T +
sigma^2 I) exactly. With orthogonal columns in W the true posterior is diagonal, so a
diagonal q can match it (ELBO = log p(x)) or be moved away from it (ELBO < log p(x)).
"""

import keras
import numpy as np
import tensorflow as tf
from scipy import stats

D, LATENT, SIGMA = 5, 2, 0.5
RNG = np.random.default_rng(3)
W = np.linalg.qr(RNG.normal(size=(D, D)))[0][:, :LATENT] * [2.0, 1.0]
B = RNG.normal(size=D)
POSTERIOR_PRECISION = np.diag(W.T @ W) / SIGMA**2 + 1.0  # diagonal because W^T W is


class LinearGaussian:
    """Encoder q(z | x) = the true posterior, optionally shifted and widened."""

    def __init__(self, shift=0.0, std_scale=1.0):
        self.shift, self.std_scale = shift, std_scale

    def posterior(self, x):
        mean = (x - B) @ W / SIGMA**2 / POSTERIOR_PRECISION + self.shift
        var = np.broadcast_to(self.std_scale**2 / POSTERIOR_PRECISION, mean.shape)
        return mean, var

    def encode(self, x):
        mean, var = self.posterior(np.asarray(x, dtype="float64"))
        return tf.constant(mean, tf.float32), tf.constant(np.log(var), tf.float32)

    def log_likelihood(self, x, z):
        mean = tf.matmul(z, tf.constant(W.T, tf.float32)) + tf.constant(B, tf.float32)
        return tf.reduce_sum(
            -0.5 * np.log(2 * np.pi * SIGMA**2) - tf.square(x - mean) / (2 * SIGMA**2), axis=-1
        )


def exact_log_px(x):
    return stats.multivariate_normal(B, W @ W.T + SIGMA**2 * np.eye(D)).logpdf(x)


def analytic_elbo(model, x):
    """E_q[log p(x|z)] - KL(q || p) in closed form for a diagonal Gaussian q."""
    m, s = model.posterior(x)
    residual = x - m @ W.T - B
    expected_log_lik = -D / 2 * np.log(2 * np.pi * SIGMA**2) - (
        np.sum(residual**2, axis=-1) + np.sum(s * np.sum(W**2, axis=0), axis=-1)
    ) / (2 * SIGMA**2)
    kl = 0.5 * np.sum(s + m**2 - 1 - np.log(s), axis=-1)
    return expected_log_lik - kl


X = (RNG.normal(size=(3, LATENT)) @ W.T + B + SIGMA * RNG.normal(size=(3, D))).astype("float32")


class _Weights(keras.layers.Layer):
    """A layer that only holds named weights, each starting at a given value."""

    def __init__(self, **values):
        super().__init__()
        for name, value in values.items():
            value = np.asarray(value, dtype="float32")
            init = keras.initializers.Constant(value)
            setattr(self, name, self.add_weight(shape=value.shape, initializer=init, name=name))


class TrainableLinearGaussian(keras.Model):
    """The linear-Gaussian model as a VAE with weights: q(z | x) = N((x - B) A + c, exp(s)),
    p(x | z) = N(z V^T + b, SIGMA^2 I). It starts as ``LinearGaussian(shift, std_scale)``
    with the true V = W and b = B, so that its log p(x) is ``exact_log_px``."""

    def __init__(self, shift=0.0, std_scale=1.0, seed=0):
        super().__init__()
        self.encoder = _Weights(
            A=W / SIGMA**2 / POSTERIOR_PRECISION,
            c=np.full(LATENT, shift),
            s=np.log(std_scale**2 / POSTERIOR_PRECISION),
        )
        self.decoder = _Weights(V=W, b=B)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def encode(self, x):
        e = self.encoder
        mu = tf.matmul(tf.convert_to_tensor(x, tf.float32) - B.astype("float32"), e.A) + e.c
        return mu, tf.broadcast_to(e.s, tf.shape(mu))

    def log_likelihood(self, x, z):
        mean = tf.matmul(z, self.decoder.V, transpose_b=True) + self.decoder.b
        return tf.reduce_sum(
            -0.5 * np.log(2 * np.pi * SIGMA**2) - tf.square(x - mean) / (2 * SIGMA**2), axis=-1
        )

    def parameters(self):
        """The weights as float64 arrays by name: A, c, s, V, b."""
        return {v.name: v.numpy().astype("float64") for v in self.trainable_variables}


def numpy_log_weights(parameters, x, eps):
    """log p(x, z_s) - log q(z_s | x) in float64 for z_s = mu + sigma * eps_s; eps: (k, n, LATENT),
    x: (n, D); shape (k, n). Written from the densities, independently of the package."""
    p = parameters
    mu = (x - B) @ p["A"] + p["c"]
    z = mu + np.exp(p["s"] / 2) * eps
    residual = x - z @ p["V"].T - p["b"]
    log_px_z = np.sum(-0.5 * np.log(2 * np.pi * SIGMA**2) - residual**2 / (2 * SIGMA**2), -1)
    log_pz = np.sum(-0.5 * (np.log(2 * np.pi) + z**2), -1)
    log_qz = np.sum(-0.5 * (np.log(2 * np.pi) + p["s"] + (z - mu) ** 2 / np.exp(p["s"])), -1)
    return log_px_z + log_pz - log_qz


def numpy_bound(parameters, x, eps):
    """The estimate of L_k from draws eps (k, n, LATENT), per example: shape (n,)."""
    log_w = numpy_log_weights(parameters, x, eps)
    top = log_w.max(axis=0)
    return top + np.log(np.mean(np.exp(log_w - top), axis=0))
