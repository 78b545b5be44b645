"""The original article's VAE and training loop, as the baseline of bench_training.py.

This is the original article's code (Encoder, Decoder, VAE, vae_loss, the module-level
``@tf.function train_step`` and the Python epoch loop with ``.numpy()`` on every step), kept
as it is so the benchmark measures the article's loop itself.

The ONE change, in ``vae_loss``: the article calls
``tf.reduce_sum(tf.keras.losses.binary_crossentropy(original, reconstructed), axis=1)``,
which crashes on TF 2.21 / Keras 3 ("Invalid reduction dimension 1"): binary_crossentropy
already averages over the last axis and returns a rank-1 tensor. Here both arguments get a
trailing axis of size 1 (``[..., None]``), so binary_crossentropy returns the per-pixel
cross-entropy of shape (batch, 784) and the article's ``reduce_sum(axis=1)`` sums it over the
pixels, as the article intended. Nothing else differs from the article (the data preparation
and the loop live in ``make_dataset`` / ``run_epoch`` below so the benchmark can time them).
"""

import numpy as np
import tensorflow as tf
from tensorflow.keras import layers


class Encoder(tf.keras.Model):
    def __init__(self, latent_dim, intermediate_dim=128):
        super(Encoder, self).__init__()  # noqa: UP008 (the article's spelling)
        self.dense1 = layers.Dense(intermediate_dim, activation="relu")
        self.mu = layers.Dense(latent_dim)
        self.log_var = layers.Dense(latent_dim)

    def call(self, x):
        x = self.dense1(x)
        mu = self.mu(x)
        log_var = self.log_var(x)
        return mu, log_var


class Decoder(tf.keras.Model):
    def __init__(self, latent_dim, intermediate_dim=128, output_dim=784):
        super(Decoder, self).__init__()  # noqa: UP008
        self.dense1 = layers.Dense(intermediate_dim, activation="relu")
        self.output_layer = layers.Dense(output_dim, activation="sigmoid")

    def call(self, z):
        z = self.dense1(z)
        reconstruction = self.output_layer(z)
        return reconstruction


class VAE(tf.keras.Model):
    def __init__(self, latent_dim=2, intermediate_dim=128, input_dim=784):
        super(VAE, self).__init__()  # noqa: UP008
        self.encoder = Encoder(latent_dim, intermediate_dim)
        self.decoder = Decoder(latent_dim, intermediate_dim, input_dim)

    def call(self, x):
        mu, log_var = self.encoder(x)
        epsilon = tf.random.normal(shape=tf.shape(mu))
        z = mu + tf.exp(0.5 * log_var) * epsilon
        reconstruction = self.decoder(z)
        return reconstruction, mu, log_var


def vae_loss(original, reconstructed, mu, log_var):
    reconstruction_loss = tf.reduce_mean(
        tf.reduce_sum(
            # CHANGED: [..., None] on both arguments (see the module docstring).
            tf.keras.losses.binary_crossentropy(original[..., None], reconstructed[..., None]),
            axis=1,
        )
    )
    kl_loss = -0.5 * tf.reduce_mean(
        tf.reduce_sum(1 + log_var - tf.square(mu) - tf.exp(log_var), axis=1)
    )
    total_loss = reconstruction_loss + kl_loss
    return total_loss


@tf.function
def train_step(model, optimizer, x):
    with tf.GradientTape() as tape:
        reconstruction, mu, log_var = model(x)
        loss = vae_loss(x, reconstruction, mu, log_var)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))  # noqa: B905
    return loss


def make_dataset(x_train_uint8, batch_size=32, input_dim=784):
    """The article's data preparation: a float32 copy in [0, 1], batched, not shuffled."""
    x_train = x_train_uint8.reshape(-1, input_dim).astype("float32") / 255.0
    return tf.data.Dataset.from_tensor_slices(x_train).batch(batch_size)


def run_epoch(vae, optimizer, train_dataset):
    """The body of the article's ``for epoch in range(epochs):`` loop (without its print)."""
    epoch_loss = []
    for batch in train_dataset:
        loss = train_step(vae, optimizer, batch)
        epoch_loss.append(loss.numpy())
    return np.mean(epoch_loss)
