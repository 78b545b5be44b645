"""ModelConfig: builds each of the package's models, reads one back, refuses bad settings."""

import json

import numpy as np
import pytest

import vae_tutorial as vt
from vae_tutorial.model_config import ModelConfig


@pytest.mark.parametrize(
    "config, cls, parameters",
    [
        # 784-128-2 and back: the original article's model, counted by hand
        (ModelConfig(), vt.VAE, (784 * 128 + 128) + 2 * (128 * 2 + 2) + (2 * 128 + 128)
         + (128 * 784 + 784)),
        (ModelConfig(kind="conv", latent_dim=3), vt.ConvVAE, None),
        (ModelConfig(kind="conditional", intermediate_dim=[64]), vt.ConditionalVAE,
         (794 * 64 + 64) + 2 * (64 * 2 + 2) + (12 * 64 + 64) + (64 * 784 + 784)),
    ],
)  # fmt: skip
def test_builds_the_model_and_reads_it_back(config, cls, parameters):
    model = config.build(seed=3)
    assert type(model) is cls and model.seed == 3 and model.latent_dim == config.latent_dim
    if parameters is not None:
        if not model.built:  # the conditional model builds itself
            model(np.zeros((1, 784), np.float32))
        assert model.count_params() == parameters
    assert ModelConfig.of(model) == config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config


def test_defaults_and_likelihood_options_are_stored_normalised():
    assert ModelConfig().intermediate_dim == (128,)  # VAE's default
    assert ModelConfig(kind="conditional").num_classes == 10
    assert ModelConfig(intermediate_dim=512).intermediate_dim == (512,)
    options = ModelConfig(likelihood={"name": "gaussian", "sigma": 0.2})
    assert options.build().likelihood.sigma == 0.2
    assert ModelConfig(likelihood={"name": "gaussian", "sigma": 0.1}).likelihood == "gaussian"


def test_a_model_it_cannot_describe_has_no_config():
    class Own(vt.VAE):
        pass

    assert ModelConfig.of(Own(latent_dim=2)) is None
    assert ModelConfig.of(vt.VAE(latent_dim=2, input_dim=100)) is None


@pytest.mark.parametrize(
    "settings, error, match",
    [
        ({"kind": "gan"}, ValueError, "kind='gan' is not a valid choice"),
        ({"latent_dim": 0}, ValueError, "latent_dim must be an int >= 1"),
        ({"latent_dim": 1.5}, TypeError, "latent_dim must be an int"),
        ({"kind": "conv", "intermediate_dim": [64]}, ValueError, "does not apply to kind='conv'"),
        ({"intermediate_dim": [0]}, ValueError, "intermediate_dim must be a positive int"),
        ({"num_classes": 10}, ValueError, "num_classes is the conditional model's"),
        ({"kind": "conditional", "num_classes": 1}, ValueError, "num_classes must be an int >= 2"),
        ({"likelihood": "poisson"}, ValueError, "likelihood='poisson' is not a valid choice"),
    ],
)
def test_bad_settings_name_the_fix(settings, error, match):
    with pytest.raises(error, match=match):
        ModelConfig(**settings)
