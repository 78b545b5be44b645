"""The latent explorer (vae_tutorial/explorer.py): sliders decode z, the image follows."""

import io

import numpy as np
import pytest
from matplotlib.image import imread

from vae_tutorial.explorer import LatentExplorer, picture_png

pytest.importorskip("ipywidgets")


def _decoded(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png))  # a grey PNG: one channel, in [0, 1]


class Recorder:
    """A decoder that shows z: the top rows hold z[0], the rest z[1], squashed into [0, 1]."""

    def __init__(self):
        self.calls = []

    def __call__(self, z):
        self.calls.append(np.array(z))
        picture = np.empty((28, 28))
        picture[:14], picture[14:] = 1 / (1 + np.exp(-z[0, 0])), 1 / (1 + np.exp(-z[0, 1]))
        return picture.reshape(1, 784)


def test_picture_png_round_trips_the_pixels_scaled_up():
    pixels = np.random.default_rng(0).random(784)
    image = _decoded(picture_png(pixels, scale=3))
    assert image.shape == (84, 84)
    expected = np.kron(pixels.reshape(28, 28), np.ones((3, 3)))
    np.testing.assert_allclose(image, expected, atol=0.5 / 255 + 1e-6)  # 8-bit rounding


def test_moving_a_slider_decodes_the_new_z_and_redraws():
    decode = Recorder()
    explorer = LatentExplorer({"vae": decode}, 2, start=[0.5, -1.0])
    np.testing.assert_allclose(decode.calls[-1], [[0.5, -1.0]])
    before = explorer.image.value
    explorer.sliders[1].value = 2.0
    np.testing.assert_allclose(decode.calls[-1], [[0.5, 2.0]])
    assert explorer.image.value != before
    bottom = _decoded(explorer.image.value)[-1, 0]
    assert bottom == pytest.approx(1 / (1 + np.exp(-2.0)), abs=1 / 255)


def test_the_selector_switches_decoders_at_the_same_z():
    light, dark = (lambda z: np.full((1, 784), 0.9)), (lambda z: np.full((1, 784), 0.1))
    explorer = LatentExplorer({"light": light, "dark": dark}, 3, selector_name="beta")
    assert _decoded(explorer.image.value).mean() == pytest.approx(0.9, abs=1 / 255)
    explorer.selector.value = "dark"
    assert _decoded(explorer.image.value).mean() == pytest.approx(0.1, abs=1 / 255)
    assert explorer.selector in explorer.widget.children[1].children


def test_one_decoder_shows_no_selector():
    explorer = LatentExplorer({"vae": Recorder()}, 2)
    assert explorer.selector not in explorer.widget.children[1].children
    assert len(explorer.sliders) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decoders": {}, "latent_dim": 2}, "decoders is empty"),
        ({"decoders": {"v": Recorder()}, "latent_dim": 2, "start": [0.0]}, "start has shape"),
        ({"decoders": {"v": Recorder()}, "latent_dim": 32}, "dims"),
        ({"decoders": {"v": Recorder()}, "latent_dim": 3, "dims": [1, 3]}, "dims"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatentExplorer(**kwargs)


def test_sliders_for_some_dims_keep_the_others_at_start():
    decode = Recorder()
    explorer = LatentExplorer({"vae": decode}, 4, start=[0.1, 0.2, 0.3, 0.4], dims=[2, 0])
    assert [s.description for s in explorer.sliders] == ["z[2]", "z[0]"]
    explorer.sliders[0].value = -1.5
    np.testing.assert_allclose(decode.calls[-1], [[0.1, 0.2, -1.5, 0.4]])


def test_where_no_kernel_runs_the_notebook_shows_one_plain_line():
    bundle = LatentExplorer({"vae": Recorder()}, 2)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("LatentExplorer: 2 slider(s)")
    assert "PNG" not in bundle["text/plain"]
