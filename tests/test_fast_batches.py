"""The fast runner's in-graph batches are make_batches' batches: the same images, pixels and
labels, eagerly, in a graph and under XLA (vae_tutorial.fast)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial.batching import BINARIZE_MODES, epoch_order, make_batches
from vae_tutorial.fast.epochs import _in_graph_batch
from vae_tutorial.fast.packed_images import gather_images, resident_images
from vae_tutorial.idx import aligned


@pytest.mark.parametrize("binarize", BINARIZE_MODES)
@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_the_fast_runners_batches_are_make_batches_batches(binarize, jit_compile):
    rng = np.random.default_rng(1)
    images = aligned(rng.integers(0, 256, size=(70, 28, 28), dtype=np.uint8))
    labels = rng.integers(0, 10, size=70)
    seed, epoch, batch_size = 5, 3, 32
    want = list(
        make_batches(images, batch_size=batch_size, binarize=binarize, seed=seed, epoch=epoch,
                     labels=labels)
    )  # fmt: skip
    resident = resident_images(images, binarize, seed)
    order = tf.constant(epoch_order(len(images), seed, epoch))

    def batch(number, size):
        return _in_graph_batch(resident, order, tf.constant(labels, tf.int32), number,
                               batch_size=batch_size, size=size, binarize=binarize, seed=seed,
                               epoch=tf.constant(epoch, tf.int64))  # fmt: skip

    if jit_compile is not None:
        batch = tf.function(batch, jit_compile=jit_compile, autograph=False)
    for number, (x, y) in enumerate(want):
        got_x, got_y = batch(tf.constant(number, tf.int64), len(x))
        if binarize in ("static", "dynamic"):  # the same 0/1 pixels
            np.testing.assert_array_equal(got_x.numpy(), x.numpy())
        else:  # grey values: a graph may divide by 255 as a product with 1/255 (one ulp)
            np.testing.assert_array_max_ulp(got_x.numpy(), x.numpy(), maxulp=1)
        np.testing.assert_array_equal(got_y.numpy(), y.numpy())


@pytest.mark.parametrize("image_shape", [(28, 28), (28, 28, 1), (3, 3)])
@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_resident_images_gather_the_chosen_images_byte_for_byte(image_shape, jit_compile):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, *image_shape), dtype=np.uint8)
    resident = resident_images(images, "none", seed=0)
    assert resident.dtype == (tf.int32 if image_shape[-1] % 4 == 0 else tf.uint8)
    indices = tf.constant(rng.integers(0, 50, size=17), tf.int64)
    gather = gather_images
    if jit_compile is not None:  # in a graph, and compiled by XLA
        gather = tf.function(gather_images, jit_compile=jit_compile)
    got = gather(resident, indices).numpy()
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, images[indices.numpy()])


def test_resident_images_share_the_arrays_memory_and_take_any_array():
    images = aligned(np.arange(4 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(4, 28, 28))
    resident = resident_images(images, "none", seed=0)
    images[2, 5, 9] = 7  # seen through the tensor: no copy was made
    np.testing.assert_array_equal(gather_images(resident, tf.constant([2])).numpy()[0], images[2])
    every_other = images[::2]  # not contiguous: kept as uint8 (a copy)
    got = gather_images(resident_images(every_other, "none", seed=0), tf.constant([1, 0]))
    np.testing.assert_array_equal(got.numpy(), every_other[[1, 0]])
