"""Training on the importance-weighted bound (IWAE), with the plain or the doubly
reparameterized gradient (DReG).

With k draws z_1..z_k ~ q(z | x) and weights w_s = p(x, z_s) / q(z_s | x),

    L_k = E[ log (1/k) sum_s w_s ]       (Burda et al., 2015)

is a lower bound on log p(x) that rises with k (``evaluation.iwae_bound`` scores it); L_1 is
the ELBO. Here it is what training maximises. Its reparameterized gradient is

    grad L_k = E[ sum_s w~_s grad log w_s ],  w~_s = w_s / sum_t w_t   (normalised weights).

For the decoder's weights theta this is all there is. For the encoder's phi the gradient of
log w_s has two parts: through z_s (the pathwise part) and through q's own density
(the score part, whose expectation is zero but whose noise grows with k). Tucker et al. (2018)
rewrite the score part with a second reparameterization; the result (DReG),

    grad_phi L_k = E[ sum_s w~_s^2 (d log w_s / d z_s) (d z_s / d phi) ],

has the same expectation, and with log q's parameters held fixed in log w_s its noise no
longer grows with k. The encoder's signal-to-noise ratio, which falls like 1/sqrt(k) for the
plain estimator (Rainforth et al., 2018), then rises with k (:func:`gradient_snr`).

Taught in notebook 12_importance_weighted_training.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.batching import split_batch
from vae_tutorial.compiled import compiled_for
from vae_tutorial.evaluation import log_joint_terms
from vae_tutorial.losses import gaussian_log_density, kl_divergence, reparameterize
from vae_tutorial.priors import has_standard_normal_prior
from vae_tutorial.types_ import Batch, TensorLike
from vae_tutorial.validation import check_choice, check_int, graph_errors_as_value_errors

ESTIMATORS = ("plain", "dreg")
_K_FIX = "k is the number of importance samples per image, e.g. 5 (1 is the ELBO)."


def _draws(model: keras.Model, mu: tf.Tensor, log_var: tf.Tensor, k: int) -> tf.Tensor:
    """k reparameterized draws z_s ~ q(z | x), shape (k, batch, latent).

    Drawn as ``reparameterize`` draws, with the model's seed generator: fit's fast runner draws
    the same numbers (``losses.normal_sampler``), and with k = 1 they are the numbers the ELBO
    step would draw."""
    shape = tf.concat([[k], tf.shape(mu)], axis=0)
    seed = getattr(model, "seed_generator", None)
    return reparameterize(tf.broadcast_to(mu, shape), tf.broadcast_to(log_var, shape), seed=seed)


def iwae_terms(
    model: keras.Model, x: Batch, k: int, *, estimator: str = "plain"
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Per example, shape (batch,): ``(surrogate, reconstruction, kl)``.

    ``surrogate``'s value is -L_k estimated from k draws (nats); its gradient is the plain or
    the DReG estimator (see :func:`iwae_loss`). ``reconstruction`` is -log p(x | z_s) averaged
    over the k draws and ``kl`` KL(q(z | x) || p(z)): in closed form for the N(0, I) prior,
    for a learned prior the mean of log q(z_s | x) - log p(z_s) over the k draws; the ELBO
    step's terms, reported as fit reports them.
    Taught in notebook 12_importance_weighted_training.
    """
    k = check_int(k, "k", 1, fix=_K_FIX)
    check_choice(estimator, "estimator", ESTIMATORS)
    images, labels = split_batch(x)
    if labels is not None:
        raise ValueError(
            "IWAE training takes images alone; a ConditionalVAE's bound on log p(x | y) is "
            "scored by evaluation.iwae_bound but not trained here: train it with the ELBO."
        )
    x = tf.convert_to_tensor(images, tf.float32)
    mu, log_var = model.encode(x)
    z = _draws(model, mu, log_var, k)
    dreg = estimator == "dreg"
    # DReG: log w_s sees z_s and q's parameters as constants; the encoder's gradient comes
    # back through z alone, below.
    z_in, q_mu, q_log_var = z, mu, log_var
    if dreg:
        z_in, q_mu, q_log_var = (tf.stop_gradient(t) for t in (z, mu, log_var))
    with tf.GradientTape(watch_accessed_variables=False) as inner:
        inner.watch(z_in)
        log_px_z, log_pz = log_joint_terms(model, x, z_in)
        log_q = gaussian_log_density(z_in, q_mu, q_log_var)
        log_w = log_px_z + log_pz - log_q  # (k, batch)
    bound = tf.reduce_logsumexp(log_w, axis=0) - math.log(k)  # grad: sum_s w~_s grad log w_s
    if dreg:
        # sum_s w~_s^2 d log w_s / d z_s, held constant, times (z - z): a zero whose gradient
        # is the DReG encoder gradient (z depends on the encoder alone).
        weights = tf.nn.softmax(log_w, axis=0)[..., tf.newaxis]
        pathwise = tf.stop_gradient(tf.square(weights) * inner.gradient(log_w, z_in))
        bound += tf.reduce_sum(pathwise * (z - tf.stop_gradient(z)), axis=[0, 2])
    if has_standard_normal_prior(model):
        kl = kl_divergence(mu, log_var)
    else:  # no closed form: the k draws' Monte Carlo estimate, as prior_elbo reports it
        kl = tf.reduce_mean(log_q - log_pz, axis=0)
    return -bound, -tf.reduce_mean(log_px_z, axis=0), kl


def iwae_loss(model: keras.Model, x: Batch, k: int, *, estimator: str = "plain") -> tf.Tensor:
    """The batch-mean training loss of IWAE: its value is -L_k, in nats per image.

    ``k`` importance samples per image. ``estimator="plain"``: the gradient is IWAE's,
    sum_s w~_s grad log w_s, for every weight. ``"dreg"``: the decoder's gradient is the same;
    the encoder's is the doubly reparameterized one (Tucker et al., 2018), of the same
    expectation and lower variance. ``model`` needs ``encode(x) -> (mu, log_var)`` and
    ``log_likelihood(x, z)`` (a VAE or ConvVAE); its ``seed_generator`` draws the noise.
    Taught in notebook 12_importance_weighted_training.
    """
    return tf.reduce_mean(iwae_terms(model, x, k, estimator=estimator)[0])


def iwae_step_terms(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, x: Batch, beta: TensorLike = 1.0,
    *, k: int, estimator: str = "plain", free_bits: TensorLike = 0.0,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:  # fmt: skip
    """One gradient step on -L_k; returns the batch means ``(loss, reconstruction, kl)``.

    ``loss`` is -L_k; ``reconstruction`` and ``kl`` are the ELBO's terms averaged over the k
    draws (``iwae.iwae_terms``), so with k = 1 they are what ``step.train_step_terms`` reports
    for the same noise. The step of ``fit(..., TrainingConfig(objective="iwae", k=...))``,
    called as ``train_step_terms`` is: ``beta`` and ``free_bits`` belong to the ELBO, and
    must be 1 and 0 here. Taught in notebook 12_importance_weighted_training.
    """
    if isinstance(beta, (int, float)) and beta != 1:
        raise ValueError("the importance-weighted bound has no KL weight: use beta=1.0.")
    if isinstance(free_bits, (int, float)) and free_bits != 0:
        raise ValueError("free bits belong to the ELBO's KL term: use free_bits=0 with IWAE.")
    with tf.GradientTape() as tape:
        loss, reconstruction, kl = (
            tf.reduce_mean(term) for term in iwae_terms(model, x, k, estimator=estimator)
        )
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    return loss, reconstruction, kl


def _gradients(model, x, k, estimator):
    """The gradient of :func:`iwae_loss` for the encoder's and the decoder's weights."""
    with tf.GradientTape() as tape:
        loss = iwae_loss(model, x, k, estimator=estimator)
    encoder, decoder = model.encoder.trainable_variables, model.decoder.trainable_variables
    gradients = tape.gradient(loss, encoder + decoder)
    return gradients[: len(encoder)], gradients[len(encoder) :]


def gradient_snr(
    model: keras.Model, x: Batch, k: int, *, estimator: str = "plain", repeats: int = 100
) -> dict:
    """The signal-to-noise ratio of the IWAE gradient, per weight: abs(E[g]) / std(g).

    ``repeats`` gradients of :func:`iwae_loss` on the same batch ``x``, each from fresh noise,
    give every weight's mean and standard deviation (Rainforth et al., 2018: the plain
    estimator's encoder SNR falls like 1/sqrt(k) while the decoder's rises like sqrt(k); DReG's
    encoder SNR rises too). Returns ``{"encoder": median SNR, "decoder": median SNR,
    "encoder_per_weight": array, "decoder_per_weight": array, "k", "estimator", "repeats"}``;
    the medians leave out weights whose gradient never varies (std 0, SNR undefined: NaN in
    the arrays). The model's sampling state is put back afterwards, so two calls (say plain
    and DReG) use the same noise. Taught in notebook 12_importance_weighted_training.
    """
    repeats = check_int(repeats, "repeats", 2, fix="e.g. 100 gradient draws.")
    k = check_int(k, "k", 1, fix=_K_FIX)
    check_choice(estimator, "estimator", ESTIMATORS)
    x = tf.convert_to_tensor(split_batch(x)[0], tf.float32)
    parts = model.encoder, model.decoder
    sizes = [sum(int(np.prod(v.shape)) for v in part.trainable_variables) for part in parts]
    means, squares = [np.zeros(n) for n in sizes], [np.zeros(n) for n in sizes]  # Welford
    generator = getattr(model, "seed_generator", None)
    saved = None if generator is None else generator.state.numpy()
    step = compiled_for(model, _gradients)
    try:
        with graph_errors_as_value_errors():
            for count in range(1, repeats + 1):
                for i, part in enumerate(step(x, k, estimator)):
                    g = np.concatenate([np.ravel(t.numpy()) for t in part]).astype(np.float64)
                    delta = g - means[i]
                    means[i] += delta / count
                    squares[i] += delta * (g - means[i])
    finally:
        if generator is not None:
            generator.state.assign(saved)
    result: dict = {"k": k, "estimator": estimator, "repeats": repeats}
    for name, mean, m2 in zip(("encoder", "decoder"), means, squares, strict=True):
        std = np.sqrt(m2 / (repeats - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            snr = np.where(std > 0, np.abs(mean) / std, np.nan)
        result[name] = float(np.nanmedian(snr)) if np.isfinite(snr).any() else math.nan
        result[f"{name}_per_weight"] = snr
    return result
