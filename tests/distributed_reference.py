"""What tests/test_distributed.py and its fresh-process checks share: tiny data, a tiny model and
the reference, a plain GradientTape loop with no strategy at all (the mean over each global
batch of the per-example negative ELBO, on the same batches and noise as fit's, and Adam)."""

import keras
import numpy as np
import tensorflow as tf

import vae_tutorial as vt
from vae_tutorial.distributed import batches_with_noise, replica_terms

_rng = np.random.default_rng(0)
TRAIN = _rng.integers(0, 256, (300, 28, 28)).astype(np.uint8)  # batches of 64: 4 full, one of 44
TEST = _rng.integers(0, 256, (100, 28, 28)).astype(np.uint8)
SETTINGS = {"epochs": 2, "batch_size": 64, "seed": 0, "progress": False}


def new_model():
    keras.utils.set_random_seed(0)
    return vt.VAE(latent_dim=2, intermediate_dim=16, seed=0)


def reference():
    """The model trained by the plain loop, and its held-out ELBO (mean over the images)."""
    model, optimizer = new_model(), keras.optimizers.Adam(1e-3)
    for epoch in range(SETTINGS["epochs"]):
        for x, eps in batches_with_noise(
            model, TRAIN, batch_size=64, binarize="dynamic", seed=0, epoch=epoch
        ):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(replica_terms(model, x, eps)[0])
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    held_out = batches_with_noise(
        model, TEST, batch_size=256, binarize="dynamic", seed=0, epoch=2**30, shuffle=False
    )
    elbo = np.concatenate([-replica_terms(model, x, eps)[0].numpy() for x, eps in held_out])
    return model, float(elbo.mean())


def max_difference(a, b) -> float:
    """The largest absolute difference between two models' weights."""
    return max(
        float(np.abs(u.numpy() - v.numpy()).max())
        for u, v in zip(a.trainable_variables, b.trainable_variables, strict=True)
    )
