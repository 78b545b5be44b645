"""Model shapes, helpers and input checks for the MLP and convolutional VAEs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_tutorial import VAE, ConvDecoder, ConvEncoder, ConvVAE, Decoder, Encoder, vae_loss

RNG = np.random.default_rng(1)


def binary_images(n, shape=(784,)):
    return RNG.integers(0, 2, size=(n, *shape)).astype("float32")


@pytest.mark.parametrize(
    "model, shape",
    [(VAE(latent_dim=3, intermediate_dim=32), (784,)), (ConvVAE(latent_dim=3), (28, 28, 1))],
)
def test_call_returns_logits_mu_and_log_var(model, shape):
    x = binary_images(5, shape)
    logits, mu, log_var = model(x)
    assert logits.shape == (5, *shape)
    assert mu.shape == log_var.shape == (5, 3)
    assert model.event_shape == shape
    assert model.reconstruct(x).shape == (5, *shape)
    samples = model.sample(4).numpy()
    assert samples.shape == (4, *shape)
    assert samples.min() >= 0.0 and samples.max() <= 1.0
    assert model.log_likelihood(x, mu).shape == (5,)


def test_seed_constructor_arguments_work():
    vae = VAE(2, input_dim=784)
    assert (vae.latent_dim, vae.intermediate_dim, vae.input_dim) == (2, 128, 784)
    assert isinstance(vae.encoder, Encoder) and isinstance(vae.decoder, Decoder)
    assert isinstance(ConvVAE().encoder, ConvEncoder)
    assert isinstance(ConvVAE().decoder, ConvDecoder)


def test_hidden_layers_follow_intermediate_dim():
    vae = VAE(latent_dim=20, intermediate_dim=[512, 256])
    vae(binary_images(2))
    assert [layer.units for layer in vae.encoder.hidden.layers] == [512, 256]
    assert [layer.units for layer in vae.decoder.hidden.layers] == [256, 512]


def test_untrained_loss_is_near_784_log_2():
    x = binary_images(64)
    for model, batch in ((VAE(), x), (ConvVAE(), x.reshape(-1, 28, 28, 1))):
        loss = float(vae_loss(batch, *model(batch)))
        # Near-zero logits cost log 2 per pixel; the initial KL adds at most a few nats.
        assert 784 * np.log(2) - 5 < loss < 784 * np.log(2) + 25


def test_same_seed_gives_the_same_model_and_samples():
    x = binary_images(3)
    outputs = []
    for _ in range(2):
        keras.utils.set_random_seed(7)
        model = VAE(latent_dim=2, intermediate_dim=16, seed=7)
        outputs.append(model(x)[0].numpy())
    np.testing.assert_array_equal(*outputs)


def test_get_config_round_trip():
    vae = VAE(latent_dim=4, intermediate_dim=[64, 32], input_dim=784, seed=3)
    clone = VAE.from_config(vae.get_config())
    assert (clone.latent_dim, clone.intermediate_dim, clone.seed) == (4, [64, 32], 3)


@pytest.mark.parametrize(
    "model, x, match",
    [
        (VAE(), np.zeros((4, 100), "float32"), r"got \(4, 100\).*input_dim=100"),
        (VAE(), np.zeros((4, 28, 28), "float32"), r"reshape it with x.reshape\(-1, 784\)"),
        (ConvVAE(), np.zeros((4, 784), "float32"), r"\(batch, 28, 28, 1\)"),
    ],
)
def test_wrong_batch_shape_names_the_fix(model, x, match):
    with pytest.raises(ValueError, match=match) as error:
        model(x)
    assert "Exception encountered" not in str(error.value)


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError)]
)
def test_bad_latent_dim_is_refused(bad, error):
    with pytest.raises(error, match=r"latent_dim must be an int( >= 1)?, got .*latent_dim=2"):
        VAE(latent_dim=bad)


def test_bad_intermediate_dim_is_refused():
    with pytest.raises(ValueError, match="intermediate_dim must be a positive int"):
        VAE(intermediate_dim=[])


@pytest.mark.parametrize("make", [lambda: VAE(2, [32, 16], seed=1), lambda: ConvVAE(2, seed=1)])
def test_a_plain_tf_checkpoint_saves_every_variable(make, tmp_path):
    """Layers and the sampling state are attributes that tf.train.Checkpoint can see."""
    x = binary_images(2, make().event_shape)
    model, copy = make(), make()
    model(x), copy(x)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    for variable in copy.variables:
        variable.assign(tf.zeros_like(variable))
    tf.train.Checkpoint(model=copy).restore(path).assert_existing_objects_matched()
    for saved, restored in zip(model.variables, copy.variables, strict=True):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
