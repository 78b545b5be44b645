"""A PixelCNN prior over a VQ-VAE's grid of codes: masked convolutions, log p(codes), samples.

p(codes) = prod_p p(c_p | c_1, ..., c_{p-1}), positions in raster order (row by row, left to
right; van den Oord et al. 2016, "Conditional image generation with PixelCNN decoders"). A
masked convolution keeps only the kernel taps of earlier positions: type "A" (the first
layer) leaves out the centre, so position p never sees its own code; type "B" (the layers
after it) keeps the centre, which by then holds only what came before p. A categorical
over the K codes at every position comes out of one pass; sampling runs that pass once per
position. Taught in notebook 14_vq_vae.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from vae_tutorial.quantizer import check_codes
from vae_tutorial.types_ import Seed, TensorLike
from vae_tutorial.validation import check_choice, check_int

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size: tuple[int, int], mask_type: str) -> np.ndarray:
    """1 for the kernel taps a masked convolution keeps: the rows above the centre, and in
    the centre row the taps left of it (and the centre itself for type "B").
    Taught in notebook 14_vq_vae."""
    rows, cols = kernel_size
    mask = np.zeros((rows, cols, 1, 1), np.float32)
    mask[: rows // 2] = 1.0
    mask[rows // 2, : cols // 2 + (mask_type == "B")] = 1.0
    return mask


class MaskedConv2D(layers.Conv2D):
    """A "same"-padded ``Conv2D`` whose kernel is multiplied by :func:`causal_mask`.

    ``MaskedConv2D(filters, kernel_size, mask_type="B", activation=...)``: the output at
    (i, j) depends on the inputs at positions before (i, j) in raster order, and for type "B"
    on (i, j) itself. Taught in notebook 14_vq_vae.
    """

    def __init__(self, filters: int, kernel_size: int, mask_type: str = "B", **kwargs: Any) -> None:
        kernel_size = check_int(kernel_size, "kernel_size", 1, fix="an odd int, e.g. 3.")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centre tap), got {kernel_size}; e.g. 3.")
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        self.mask_type = check_choice(mask_type, "mask_type", MASK_TYPES)
        self.mask = causal_mask(self.kernel_size, mask_type)

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return super().convolution_op(inputs, kernel * self.mask)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("padding")
        return {**config, "kernel_size": self.kernel_size[0], "mask_type": self.mask_type}


@keras.saving.register_keras_serializable(package="vae_tutorial")
class PixelCNNPrior(keras.Model):
    """A small PixelCNN over code grids: ``prior(codes)`` is (n, rows, cols, num_codes) logits.

    A type "A" 5x5 masked convolution, ``hidden_layers`` type "B" 3x3 ones (``filters``
    channels each, ReLU), then two 1x1 convolutions to the logits. :meth:`log_prob` scores
    code grids, :meth:`sample` draws them; :func:`train_prior` fits one with Keras' ``fit``.
    Taught in notebook 14_vq_vae.
    """

    def __init__(
        self,
        num_codes: int,
        grid: tuple[int, int] = (7, 7),
        filters: int = 64,
        hidden_layers: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_codes = check_int(num_codes, "num_codes", 2, fix="the VQ-VAE's num_codes.")
        self.grid = tuple(check_int(side, "grid side", 1, fix="e.g. (7, 7).") for side in grid)
        self.filters = check_int(filters, "filters", 1, fix="e.g. 64.")
        self.hidden_layers = check_int(hidden_layers, "hidden_layers", 0, fix="e.g. 3.")
        self.body = keras.Sequential(
            [
                MaskedConv2D(filters, 5, "A", activation="relu"),
                *(MaskedConv2D(filters, 3, "B", activation="relu") for _ in range(hidden_layers)),
                layers.Conv2D(filters, 1, activation="relu"),
                layers.Conv2D(num_codes, 1, name="logits"),
            ],
            name="body",
        )

    def call(self, codes: tf.Tensor) -> tf.Tensor:
        return self.body(tf.one_hot(tf.cast(codes, tf.int32), self.num_codes))

    def checked_codes(self, codes: TensorLike) -> tf.Tensor:
        """``codes`` as int32 (n, rows, cols), each in [0, num_codes); a clear error if not."""
        return tf.constant(check_codes(codes, self.num_codes, self.grid))

    def log_prob(self, codes: TensorLike) -> tf.Tensor:
        """log p(codes) per grid, shape (n,): the sum over positions of log p(c_p | c_<p)."""
        codes = self.checked_codes(codes)
        log_probs = tf.nn.log_softmax(self(codes), axis=-1)
        picked = tf.gather(log_probs, codes, batch_dims=3)
        return tf.reduce_sum(picked, axis=[1, 2])

    def sample(self, n: int, seed: Seed = None) -> tf.Tensor:
        """``n`` code grids (n, rows, cols) drawn position by position in raster order."""
        n = check_int(n, "n", 1, fix="e.g. 64.")
        generator = seed if isinstance(seed, keras.random.SeedGenerator) else None
        generator = generator or keras.random.SeedGenerator(seed)
        codes = np.zeros((n, *self.grid), np.int32)
        for row in range(self.grid[0]):
            for col in range(self.grid[1]):
                logits = self(codes)[:, row, col]
                codes[:, row, col] = keras.random.categorical(logits, 1, seed=generator)[:, 0]
        return tf.constant(codes)

    def get_config(self) -> dict:
        names = ("num_codes", "grid", "filters", "hidden_layers", "name")
        return {name: getattr(self, name) for name in names}


def train_prior(
    prior: PixelCNNPrior,
    codes: TensorLike,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    verbose: int = 0,
) -> list[float]:
    """Fit ``prior`` to code grids with Keras' ``fit``; return each epoch's mean -log p(codes).

    The loss is the categorical cross-entropy of every position's code, averaged; times the
    number of positions it is the negative log-likelihood per grid, in nats.
    Taught in notebook 14_vq_vae.
    """
    codes = prior.checked_codes(codes)
    keras.utils.set_random_seed(seed)
    prior.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = prior.fit(codes, codes, epochs=epochs, batch_size=batch_size, verbose=verbose)
    positions = prior.grid[0] * prior.grid[1]
    return [loss * positions for loss in history.history["loss"]]
