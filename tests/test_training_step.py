"""train_step as the original article calls it: its epoch loop, many models, bad input."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial import VAE, ConvVAE, kl_divergence, train_step, vae_loss

RNG = np.random.default_rng(2)


def binary_images(n, shape=(784,)):
    return RNG.integers(0, 2, size=(n, *shape)).astype("float32")


@pytest.mark.slow
def test_the_articles_epoch_loop_runs_unchanged():
    """The original article's usage snippet, verbatim but for the import, its data and its size."""
    from vae_tutorial import load_dataset

    images = load_dataset("mnist", download=False).train_images[:640]  # the bundled sample
    namespace = {"images": images}
    article_usage = textwrap.dedent(
        """
        import numpy as np
        import tensorflow as tf
        from vae_tutorial import VAE, train_step

        input_dim = 784
        latent_dim = 2
        batch_size = 32
        epochs = 2
        learning_rate = 1e-3

        x_train = images.reshape(-1, input_dim).astype("float32") / 255.0

        train_dataset = tf.data.Dataset.from_tensor_slices(x_train).batch(batch_size)

        vae = VAE(latent_dim, input_dim=input_dim)
        optimizer = tf.keras.optimizers.Adam(learning_rate)

        losses = []
        for epoch in range(epochs):
          epoch_loss = []
          for batch in train_dataset:
                loss = train_step(vae, optimizer, batch)
                epoch_loss.append(loss.numpy())
          print(f"Epoch: {epoch+1}, Loss: {np.mean(epoch_loss)}")
          losses.append(np.mean(epoch_loss))
        """
    )
    exec(article_usage, namespace)
    first, second = namespace["losses"]
    assert np.isfinite([first, second]).all()
    assert second < first < 784 * np.log(2) + 10


def test_train_step_returns_the_batch_loss_and_lowers_it():
    x = np.repeat(binary_images(4), 16, axis=0)  # four patterns: learnable, unlike noise
    model, optimizer = VAE(latent_dim=2, intermediate_dim=32), keras.optimizers.Adam(1e-2)
    losses = [float(train_step(model, optimizer, x)) for _ in range(30)]
    assert losses[-1] < losses[0] - 20
    # The returned tensor is the negative ELBO of the batch (one sample of z).
    assert 0 < losses[0] < 784 * np.log(2) + 20


@pytest.mark.slow
def test_a_second_and_third_model_in_the_same_process():
    """The article's module-level tf.function fails here ('SymbolicTensor' has no 'handle')."""
    x = binary_images(32)
    for model in (VAE(2, 32), VAE(4, [64, 16]), ConvVAE(2)):
        batch = x.reshape(-1, *model.event_shape)
        loss = train_step(model, keras.optimizers.Adam(1e-3), batch)
        assert np.isfinite(loss.numpy())


def test_the_articles_pitfall_is_real():
    """Without building the optimizer first, the article's pattern crashes on a second model."""

    @tf.function
    def article_train_step(model, optimizer, x):
        with tf.GradientTape() as tape:
            loss = vae_loss(x, *model(x))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    x = binary_images(8)
    article_train_step(VAE(2, 16), keras.optimizers.Adam(), x)
    with pytest.raises(Exception, match="SymbolicTensor"):
        article_train_step(VAE(2, 16), keras.optimizers.Adam(), x)


def test_beta_weights_the_kl_term():
    x = binary_images(16)
    losses = {}
    for beta in (0.0, 2.0):  # identical fresh models: same weights and same noise draws
        keras.utils.set_random_seed(0)
        model = VAE(2, 16, seed=0)
        losses[beta] = float(train_step(model, keras.optimizers.SGD(0.0), x, beta=beta))
    kl = float(tf.reduce_mean(kl_divergence(*model.encode(x))))
    assert losses[2.0] - losses[0.0] == pytest.approx(2 * kl, rel=1e-4)


@pytest.mark.parametrize(
    "batch, error, match",
    [
        (binary_images(8) * 255, ValueError, "divide them by 255"),
        (np.full((8, 784), np.nan, "float32"), ValueError, "NaN or Inf"),
        (np.full((8, 784), np.inf, "float32"), ValueError, "NaN or Inf"),
        (binary_images(8)[:, :500], ValueError, r"expects batches of shape \(batch, 784\)"),
    ],
)
def test_bad_batches_get_a_clear_error(batch, error, match):
    model, optimizer = VAE(2, 16), keras.optimizers.Adam()
    train_step(model, optimizer, binary_images(8))  # compiled already: checks run in-graph
    with pytest.raises(error, match=match) as raised:
        train_step(model, optimizer, batch)
    assert "function_node" not in str(raised.value)


def test_one_optimizer_for_two_models_is_refused():
    optimizer = keras.optimizers.Adam()
    train_step(VAE(2, 16), optimizer, binary_images(4))
    with pytest.raises(ValueError, match="one optimizer per model"):
        train_step(VAE(2, 16), optimizer, binary_images(4))


def test_a_rejected_batch_leaves_the_model_untouched():
    x = binary_images(8)
    model, optimizer = VAE(2, 16), keras.optimizers.Adam()
    train_step(model, optimizer, x)
    weights = [w.numpy() for w in model.weights]
    steps = int(optimizer.iterations)
    for bad in (x * 255, np.full_like(x, np.nan)):
        with pytest.raises(ValueError):
            train_step(model, optimizer, bad)
    assert int(optimizer.iterations) == steps
    for before, after in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())
    assert np.isfinite(float(train_step(model, optimizer, x)))
