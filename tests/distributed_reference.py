"""What tests/test_distributed.py and its fresh-process checks share: tiny data, a tiny model and
the reference, a plain GradientTape loop with no strategy at all, written here from first
principles rather than with vae_tutorial's training or distributed code.

For each global batch of B images, one step on the whole batch on one device: the negative
ELBO of each image computed by hand (Bernoulli log-likelihood of the logits, summed over the
pixels, plus the closed-form KL to N(0, I)), summed over the batch and divided by B, its
gradient by ``tf.GradientTape`` and Keras' Adam. A distributed step must equal it: each
replica's loss is its share of that sum over the *global* B, and the replicas' gradients add
up to this one. The held-out ELBO is the mean of the per-image ELBOs over every image.

The inputs are those ``fit`` documents: the images of each batch as ``make_batches`` gives
them (the data pipeline, checked on its own in test_data.py) and each batch's noise
eps ~ N(0, I) from ``tf.random.stateless_normal`` with the key (seed, epoch * 2**32 + batch).
"""

import keras
import numpy as np
import tensorflow as tf

import vae_tutorial as vt
from vae_tutorial.batching import make_batches

_rng = np.random.default_rng(0)
TRAIN = _rng.integers(0, 256, (300, 28, 28)).astype(np.uint8)  # batches of 64: 4 full, one of 44
TEST = _rng.integers(0, 256, (100, 28, 28)).astype(np.uint8)
SETTINGS = {"epochs": 2, "batch_size": 64, "seed": 0}  # the training settings fit is given
LEARNING_RATE = 1e-3  # fit's default
HELD_OUT_BATCH = 256  # fit's held-out batches: max(batch_size, 256) images
HELD_OUT_EPOCH = 2**30  # the epoch index fit gives held-out batches (one fixed binarization)


def new_model():
    keras.utils.set_random_seed(0)
    return vt.VAE(latent_dim=2, intermediate_dim=16, seed=0)


def batches(images, *, batch_size, epoch, shuffle=True):
    """(x, eps) per batch: x flattened to (size, 784), eps of shape (size, 2)."""
    seed = SETTINGS["seed"]
    options = {"binarize": "dynamic", "seed": seed, "epoch": epoch, "shuffle": shuffle}
    for number, x in enumerate(make_batches(images, batch_size=batch_size, **options)):
        x = tf.reshape(x, [-1, 784])
        key = tf.constant([seed, epoch * 2**32 + number], tf.int64)
        yield x, tf.random.stateless_normal([x.shape[0], 2], seed=key)


def negative_elbo(model, x, eps):
    """Per-image -log p(x | z) + KL(q(z | x) || N(0, I)), z = mu + sigma * eps, in nats."""
    mu, log_var = model.encoder(x)
    logits = model.decoder(mu + tf.exp(0.5 * log_var) * eps)
    # -log Bernoulli(x; sigmoid(l)) = softplus(l) - x l, summed over the pixels
    reconstruction = tf.reduce_sum(tf.nn.softplus(logits) - x * logits, axis=1)
    kl = 0.5 * tf.reduce_sum(tf.exp(log_var) + tf.square(mu) - 1.0 - log_var, axis=1)
    return reconstruction + kl


def reference():
    """The model trained by the plain loop, and its held-out ELBO (mean over the images)."""
    model, optimizer = new_model(), keras.optimizers.Adam(LEARNING_RATE)
    for epoch in range(SETTINGS["epochs"]):
        for x, eps in batches(TRAIN, batch_size=SETTINGS["batch_size"], epoch=epoch):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(negative_elbo(model, x, eps)) / x.shape[0]  # global B
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    held_out = batches(TEST, batch_size=HELD_OUT_BATCH, epoch=HELD_OUT_EPOCH, shuffle=False)
    elbo = np.concatenate([-negative_elbo(model, x, eps).numpy() for x, eps in held_out])
    assert elbo.shape == (len(TEST),)
    return model, float(elbo.mean())


def max_difference(a, b) -> float:
    """The largest absolute difference between two models' weights."""
    return max(
        float(np.abs(u.numpy() - v.numpy()).max())
        for u, v in zip(a.trainable_variables, b.trainable_variables, strict=True)
    )
