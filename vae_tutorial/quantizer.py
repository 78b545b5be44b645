"""Vector quantization: each vector replaced by its nearest codebook vector, with a gradient.

:func:`nearest_codes` finds the nearest codebook row; :func:`straight_through` hands the
decoder's gradient at z_q to z_e unchanged (z_e + sg(z_q - z_e)); the codebook learns from
:func:`codebook_loss` (or as moving averages, ``ema=True``) and the encoder commits to its codes
through :func:`commitment_loss`. :class:`VectorQuantizer` holds the codebook; ``vqvae.VQVAE``
puts it between a grid encoder and decoder (van den Oord et al. 2017).
Taught in notebook 14_vq_vae.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vae_tutorial.types_ import Seed, TensorLike
from vae_tutorial.validation import check_finite_number, check_int


def check_codes(
    codes: TensorLike, num_codes: int, grid: tuple[int, ...] | None = None
) -> np.ndarray:
    """Require ints in [0, num_codes) (and, given ``grid``, of shape (n, *grid)); return them
    as an int32 array. Taught in notebook 14_vq_vae."""
    array = np.asarray(codes)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"codes must be ints (code indices), got dtype {array.dtype}.")
    if grid is not None and (array.ndim != len(grid) + 1 or array.shape[1:] != tuple(grid)):
        raise ValueError(
            f"codes must have shape (n, {', '.join(map(str, grid))}), got {array.shape}."
        )
    if array.size and (array.min() < 0 or array.max() >= num_codes):
        raise ValueError(
            f"codes must lie in [0, {num_codes - 1}], got {array.min()}..{array.max()}; "
            "use the quantizer's num_codes."
        )
    return array.astype(np.int32)


def nearest_codes(z_e: TensorLike, codebook: TensorLike) -> tf.Tensor:
    """The index of the nearest codebook row (squared Euclidean distance) for each vector.

    ``z_e``: (..., D), ``codebook``: (K, D); returns int32 (...). ``||z - e||^2`` is expanded as
    ``||z||^2 - 2 z.e + ||e||^2``, one matrix product for all pairs. Taught in notebook 14_vq_vae.
    """
    z_e, codebook = tf.convert_to_tensor(z_e), tf.convert_to_tensor(codebook)
    flat = tf.reshape(z_e, [-1, tf.shape(codebook)[1]])
    distances = (
        tf.reduce_sum(tf.square(flat), axis=1, keepdims=True)
        - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
        + tf.reduce_sum(tf.square(codebook), axis=1)
    )
    codes = tf.argmin(distances, axis=1, output_type=tf.int32)
    return tf.reshape(codes, tf.shape(z_e)[:-1])


def straight_through(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """z_q in the forward pass, the identity in the backward pass: z_e + sg(z_q - z_e).

    Taught in notebook 14_vq_vae."""
    return z_e + tf.stop_gradient(z_q - z_e)


def _per_image_sum(values: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def codebook_loss(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """``||sg(z_e) - z_q||^2`` per image, summed over the grid: moves the codebook only.

    Taught in notebook 14_vq_vae."""
    return _per_image_sum(tf.square(tf.stop_gradient(z_e) - z_q))


def commitment_loss(z_e: tf.Tensor, z_q: tf.Tensor) -> tf.Tensor:
    """``||z_e - sg(z_q)||^2`` per image, summed over the grid: moves the encoder only.

    Taught in notebook 14_vq_vae."""
    return _per_image_sum(tf.square(z_e - tf.stop_gradient(z_q)))


class VectorQuantizer(keras.layers.Layer):
    """A codebook of ``num_codes`` vectors of ``code_dim``: ``z_q, codes = quantizer(z_e)``.

    ``z_q`` is the nearest codebook vector at each position, with the straight-through
    gradient; ``loss(z_e, codes)`` is the per-image codebook loss plus ``commitment`` times
    the commitment loss. With ``ema=True`` the codebook is no trainable weight: ``update``
    sets it after each step to the moving averages (``decay``) of the vectors assigned to each
    code, N_k <- g N_k + (1 - g) n_k, m_k <- g m_k + (1 - g) sum z_e, e_k = m_k / N'_k with the
    Laplace-smoothed counts N'_k = (N_k + eps) / (N + K eps) * N; the codebook loss is then
    left out. ``restart_after``: ``update`` moves a code unused for that many steps onto a
    random encoder output of the batch (None: never). Taught in notebook 14_vq_vae.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        *,
        commitment: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_after: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_codes = check_int(num_codes, "num_codes", 2, fix="e.g. 64.")
        self.code_dim = check_int(code_dim, "code_dim", 1, fix="e.g. 16.")
        self.commitment = check_finite_number(commitment, "commitment", fix="e.g. 0.25.")
        if not isinstance(ema, bool):
            raise TypeError(f"ema must be True or False, got {ema!r}.")
        self.ema = ema
        self.decay = check_finite_number(decay, "decay", fix="e.g. 0.99.")
        if self.decay >= 1.0:
            raise ValueError(f"decay must be below 1, got {decay}; e.g. 0.99.")
        self.epsilon = check_finite_number(epsilon, "epsilon", exclusive=True, fix="e.g. 1e-5.")
        if restart_after is not None:
            restart_after = check_int(restart_after, "restart_after", 1, fix="or None: never.")
        self.restart_after = restart_after

    def build(self, input_shape: tuple) -> None:
        k, d = self.num_codes, self.code_dim
        if input_shape[-1] != d:
            raise ValueError(f"the quantizer takes vectors of code_dim={d}, got {input_shape}.")
        spread = keras.initializers.RandomUniform(-1.0 / k, 1.0 / k)  # the article's
        self.codebook = self.add_weight((k, d), spread, trainable=not self.ema, name="codebook")
        if self.ema:  # counts 1 and sums the codebook: the averages start at the codebook
            self.ema_counts = self.add_weight((k,), "ones", trainable=False, name="ema_counts")
            self.ema_sums = self.add_weight(
                (k, d), lambda shape, dtype=None: tf.identity(self.codebook), trainable=False,
                name="ema_sums",
            )  # fmt: skip
        if self.restart_after is not None:
            self.unused_steps = self.add_weight(
                (k,), "zeros", trainable=False, dtype="int32", name="unused_steps"
            )

    def call(self, z_e: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        codes = nearest_codes(z_e, self.codebook)
        return straight_through(z_e, self.lookup(codes)), codes

    def lookup(self, codes: TensorLike) -> tf.Tensor:
        """The codebook vectors of ``codes`` (any shape of ints): shape (..., code_dim)."""
        return tf.gather(self.codebook, codes)

    def loss(self, z_e: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
        """Per image: codebook loss (not with ``ema``) + ``commitment`` * commitment loss."""
        z_q = self.lookup(codes)
        loss = self.commitment * commitment_loss(z_e, z_q)
        return loss if self.ema else loss + codebook_loss(z_e, z_q)

    def update(self, z_e: tf.Tensor, codes: tf.Tensor, seed: Seed = None) -> None:
        """After a gradient step: the EMA codebook update (``ema``) and dead-code restarts
        (``restart_after``), from the batch's encoder outputs and their codes."""
        flat = tf.reshape(tf.stop_gradient(z_e), [-1, self.code_dim])
        assigned = tf.one_hot(tf.reshape(codes, [-1]), self.num_codes, dtype=flat.dtype)
        counts = tf.reduce_sum(assigned, axis=0)
        if self.ema:
            self._ema_update(counts, tf.matmul(assigned, flat, transpose_a=True))
        if self.restart_after is not None:
            self._restart_dead_codes(flat, counts, seed)

    def _ema_update(self, counts: tf.Tensor, sums: tf.Tensor) -> None:
        g = self.decay
        self.ema_counts.assign(g * self.ema_counts.value + (1.0 - g) * counts)
        self.ema_sums.assign(g * self.ema_sums.value + (1.0 - g) * sums)
        total = tf.reduce_sum(self.ema_counts.value)
        smoothed = (self.ema_counts.value + self.epsilon) / (
            total + self.num_codes * self.epsilon
        ) * total  # fmt: skip
        self.codebook.assign(self.ema_sums.value / smoothed[:, None])

    def _restart_dead_codes(self, flat: tf.Tensor, counts: tf.Tensor, seed: Seed) -> None:
        unused = tf.where(counts > 0, 0, self.unused_steps.value + 1)
        dead = unused >= self.restart_after
        picks = keras.random.randint((self.num_codes,), 0, tf.shape(flat)[0], seed=seed)
        fresh = tf.gather(flat, picks)
        self.codebook.assign(tf.where(dead[:, None], fresh, self.codebook.value))
        if self.ema:  # the averages start again at the new vector
            self.ema_counts.assign(tf.where(dead, 1.0, self.ema_counts.value))
            self.ema_sums.assign(tf.where(dead[:, None], fresh, self.ema_sums.value))
        self.unused_steps.assign(tf.where(dead, 0, unused))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_codes": self.num_codes,
            "code_dim": self.code_dim,
            "commitment": self.commitment,
            "ema": self.ema,
            "decay": self.decay,
            "epsilon": self.epsilon,
            "restart_after": self.restart_after,
        }
