"""Figures: axes and image counts, the manifold grid's quantiles, the PCA projection."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import scipy.stats  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import vae_tutorial as vt  # noqa: E402
from vae_tutorial import plotting  # noqa: E402


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def labels():
    return np.arange(40) % 10


@pytest.fixture(scope="module")
def model2():
    return vt.VAE(latent_dim=2, intermediate_dim=16, seed=1)


@pytest.fixture(autouse=True)
def _no_open_pyplot_figures():
    yield
    assert plt.get_fignums() == [], "plotting functions must not leave pyplot figures open"


def _count_images(fig):
    return sum(len(ax.images) for ax in fig.axes)


def test_history_has_three_panels_and_accepts_metrics_json():
    history = [
        {
            "epoch": e,
            "train_loss": 300 - e,
            "reconstruction": 290 - e,
            "kl": 5.0 + e,
            "beta": 1.0,
            "test_elbo": -(305 - e),
        }
        for e in (1, 2, 3)
    ]
    fig = vt.plot_history(history)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert len(fig.axes[0].lines) == 2  # train loss and test -ELBO
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), [304, 303, 302])
    fig = vt.plot_history({"epochs": [dict(h, test_elbo=None) for h in history]})
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="empty"):
        vt.plot_history([])


def test_reconstructions_two_rows(model2, images):
    fig = vt.plot_reconstructions(model2, images, n=6)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 12 and _count_images(fig) == 12
    top = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(top, images[0] / 255.0, atol=1e-6)  # uint8 shown as [0, 1]


def test_reconstructions_conv_model_and_float_input(images):
    model = vt.ConvVAE(latent_dim=2, seed=0)
    fig = vt.plot_reconstructions(model, images.astype(np.float32) / 255.0, n=3)
    assert _count_images(fig) == 6


def test_samples_one_mosaic(model2):
    fig = vt.plot_samples(model2, n=10)
    assert len(fig.axes) == 1 and _count_images(fig) == 1
    assert fig.axes[0].images[0].get_array().shape == (3 * 28, 4 * 28)  # 10 images: 3 rows of 4


@pytest.mark.parametrize(
    ("prior", "named"),
    [("normal", "the prior z ~ N(0, I)"), ("mog", "the learned prior (a mixture of Gaussians)"),
     ("vamp", "the learned VampPrior")],
)  # fmt: skip
def test_samples_title_names_the_prior_they_are_drawn_from(prior, named):
    model = vt.VAE(latent_dim=2, intermediate_dim=8, prior=prior, seed=0)
    title = vt.plot_samples(model, n=4).axes[0].get_title()
    assert title == f"4 samples from {named} (pixel probabilities)"


def test_latent_scatter_2d(model2, images, labels):
    fig = vt.plot_latent_scatter(model2, images, labels, class_names=[f"c{i}" for i in range(10)])
    assert len(fig.axes) == 1
    offsets = fig.axes[0].collections[0].get_offsets()
    mu = np.asarray(model2.encode(images.reshape(-1, 784).astype(np.float32) / 255.0)[0])
    np.testing.assert_allclose(offsets, mu, rtol=1e-5, atol=1e-5)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:2] == ["c0", "c1"]


def test_latent_scatter_projects_with_pca_when_latent_dim_is_large(images, labels):
    model = vt.VAE(latent_dim=5, intermediate_dim=16, seed=1)
    fig = vt.plot_latent_scatter(model, images, labels)
    assert "PCA" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="labels"):
        vt.plot_latent_scatter(model, images, labels[:3])


def test_encoding_is_batched(model2, images, labels, monkeypatch):
    seen = []
    encode = model2.encode
    monkeypatch.setattr(plotting, "_ENCODE_BATCH", 16)
    monkeypatch.setattr(model2, "encode", lambda x: seen.append(len(x)) or encode(x))
    vt.plot_latent_scatter(model2, images, labels)
    assert seen == [16, 16, 8]


def test_manifold_grid_is_normal_quantiles():
    n = 7
    grid = vt.manifold_grid(n)
    q = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n)
    assert grid.shape == (n, n, 2)
    np.testing.assert_allclose(grid[0, :, 0], q, atol=1e-12)  # z1 left to right
    np.testing.assert_allclose(grid[:, 0, 1], q[::-1], atol=1e-12)  # z2 bottom to top


def test_manifold_decodes_the_quantile_grid(model2):
    decoded = []
    decode = model2.decode

    class Spy:
        latent_dim = 2
        likelihood = model2.likelihood

        def decode(self, z):
            decoded.append(np.asarray(z))
            return decode(z)

    fig = vt.plot_manifold(Spy(), n=5)
    assert len(fig.axes) == 1 and _count_images(fig) == 1
    assert fig.axes[0].images[0].get_array().shape == (5 * 28, 5 * 28)
    q = scipy.stats.norm.ppf((np.arange(5) + 0.5) / 5)
    expected = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)
    np.testing.assert_allclose(decoded[0], expected, atol=1e-6)


def test_manifold_refuses_other_latent_dims():
    with pytest.raises(ValueError, match="latent_dim=3"):
        vt.plot_manifold(vt.VAE(latent_dim=3, intermediate_dim=8), n=4)


def test_interpolation_one_axes_per_step(model2, images):
    fig = vt.plot_interpolation(model2, images[0], images[1], steps=6)
    assert len(fig.axes) == 6 and _count_images(fig) == 6
    # The end points decode the two posterior means.
    mu = np.asarray(model2.encode(images[:2].reshape(2, 784).astype(np.float32) / 255.0)[0])
    ends = np.asarray(model2.decode(mu))
    first = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(first.reshape(-1), scipy.special.expit(ends[0]), atol=1e-5)


def test_pca_keeps_the_top_variance_direction():
    rng = np.random.default_rng(3)
    # Anisotropic Gaussian in 6-d with a known dominant direction, shifted off the origin.
    direction = rng.normal(size=6)
    direction /= np.linalg.norm(direction)
    points = rng.normal(size=(500, 6)) * 0.3 + np.outer(rng.normal(size=500) * 4.0, direction)
    points += 10.0
    projected, ratio = vt.pca_project(points, 2)

    # Reference: eigenvectors of the sample covariance (scipy), largest eigenvalue first.
    eigenvalues, eigenvectors = scipy.linalg.eigh(np.cov(points, rowvar=False))
    top = eigenvectors[:, -1]
    reference = (points - points.mean(axis=0)) @ top
    assert abs(top @ direction) > 0.99
    np.testing.assert_allclose(np.abs(projected[:, 0]), np.abs(reference), rtol=1e-6, atol=1e-8)
    assert np.var(projected[:, 0]) > np.var(projected[:, 1])
    np.testing.assert_allclose(ratio, eigenvalues[::-1][:2] / eigenvalues.sum(), rtol=1e-6)
