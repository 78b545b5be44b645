"""Figures of a VAE: training curves, reconstructions, samples and the latent space.

Every function returns a ``matplotlib.figure.Figure`` and never calls ``plt.show()``: a
notebook displays the returned figure once (figures live outside pyplot, so none is left open
and none needs closing); a script saves it with ``fig.savefig(...)``. Images may be the raw
uint8 arrays of ``load_dataset`` (N, 28, 28) or floats in [0, 1]; they are reshaped to the
model's ``event_shape`` and encoded in batches, so no float copy of a whole dataset is made.

Taught in notebooks 05_training_on_mnist (curves) and 06_latent_space (the rest).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from vae_tutorial.validation import check_int

if TYPE_CHECKING:
    import keras

__all__ = [
    "manifold_grid",
    "pca_project",
    "plot_history",
    "plot_interpolation",
    "plot_latent_scatter",
    "plot_manifold",
    "plot_reconstructions",
    "plot_class_samples",
    "plot_samples",
]

# Images encoded per call: 1,000 x 784 floats = 3 MB at a time.
_ENCODE_BATCH = 1000


# --------------------------------------------------------------------------------------------
# Helpers


def _new_figure(**kwargs) -> Figure:
    """A figure outside pyplot's global state: nothing to leak, nothing shown twice.

    In Jupyter a plain ``Figure`` only shows as an image once matplotlib's inline support is
    on; this registers the same PNG formatter when it is not (e.g. pyplot never imported).
    """
    fig = Figure(layout="constrained", **kwargs)
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    png = shell.display_formatter.formatters.get("image/png") if shell is not None else None
    if png is not None:
        try:
            png.lookup_by_type(Figure)
        except KeyError:
            from IPython.core.pylabtools import print_figure

            png.for_type(Figure, lambda f: print_figure(f, "png", bbox_inches="tight"))
    return fig


def _as_floats(images) -> np.ndarray:
    """uint8 0..255 -> float32 in [0, 1]; floats are checked and passed through as float32."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"images must be uint8 (0-255) or floats in [0, 1], got dtype {images.dtype}."
        )
    return images.astype(np.float32, copy=False)


def _model_batch(model, images) -> np.ndarray:
    """A float32 batch of shape (N, *model.event_shape)."""
    x = _as_floats(images)
    size = int(np.prod(model.event_shape))
    if x.size % size:
        raise ValueError(
            f"images of shape {x.shape} cannot be reshaped to the model's event_shape "
            f"{tuple(model.event_shape)}: each image must have {size} pixels."
        )
    return x.reshape((-1, *model.event_shape))


def _encode_means(model, images) -> np.ndarray:
    """Posterior means E_q[z | x] of every image, computed ``_ENCODE_BATCH`` images at a time."""
    images = np.asarray(images)
    batch_size = _ENCODE_BATCH
    if len(images) == 0:
        raise ValueError("no images given: pass at least one image.")
    means = [
        np.asarray(model.encode(_model_batch(model, images[start : start + batch_size]))[0])
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(means)


def _as_pictures(values) -> np.ndarray:
    """Any batch of square images (N, 784), (N, 28, 28) or (N, 28, 28, 1) -> (N, side, side)."""
    values = np.asarray(values, dtype=np.float32)
    n = values.shape[0]
    side = math.isqrt(values[0].size)
    if side * side != values[0].size:
        raise ValueError(f"cannot show images of shape {values.shape[1:]} as square pictures.")
    return values.reshape(n, side, side)


def _decoded_means(model, z, *labels) -> np.ndarray:
    """The images decoded from codes ``z``: the likelihood's mean (pixel probabilities for a
    Bernoulli decoder)."""
    return np.asarray(model.likelihood.mean(model.decode(z, *labels)))


def _tile(pictures: np.ndarray, cols: int) -> np.ndarray:
    """(N, h, w) -> one (rows*h, cols*w) mosaic, row by row; empty cells stay 0 (black)."""
    n, h, w = pictures.shape
    rows = -(-n // cols)
    mosaic = np.zeros((rows * h, cols * w), dtype=np.float32)
    for i, pic in enumerate(pictures):
        r, c = divmod(i, cols)
        mosaic[r * h : (r + 1) * h, c * w : (c + 1) * w] = pic
    return mosaic


def _show(ax, picture, title=None) -> None:
    ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def pca_project(points: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project points (N, D) on their top ``n_components`` principal directions.

    Plain numpy: centre the points, take the SVD ``X = U S V^T``; the rows of ``V^T`` are
    the directions of decreasing variance. Returns ``(projected (N, n_components),
    explained_variance_ratio (n_components,))``. Each direction's sign is fixed so that its
    largest-magnitude coordinate is positive, making the picture reproducible.

    Taught in notebook 06_latent_space.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must be a non-empty (N, D) array, got shape {points.shape}.")
    n_components = check_int(n_components, "n_components", 1)
    if n_components > points.shape[1]:
        raise ValueError(
            f"n_components={n_components} but the points have only {points.shape[1]} dimensions."
        )
    centred = points - points.mean(axis=0)
    _, singular_values, vt = np.linalg.svd(centred, full_matrices=False)
    directions = vt[:n_components]
    signs = np.sign(directions[np.arange(n_components), np.abs(directions).argmax(axis=1)])
    directions = directions * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular_values**2
    total = variance.sum()
    ratio = variance[:n_components] / total if total > 0 else np.zeros(n_components)
    return centred @ directions.T, ratio


def manifold_grid(n: int = 20) -> np.ndarray:
    """The latent codes decoded by :func:`plot_manifold`: shape (n, n, 2).

    Coordinates are standard-normal quantiles at the evenly spaced probabilities
    ``(i + 0.5) / n`` (``statistics.NormalDist().inv_cdf``), so each cell of the grid covers
    the same prior probability mass. ``grid[row, col] = (q[col], q[n - 1 - row])``: z1 grows
    to the right, z2 grows upwards, as on a plot.

    Taught in notebook 06_latent_space.
    """
    n = check_int(n, "n", 1)
    normal = NormalDist()
    q = np.array([normal.inv_cdf((i + 0.5) / n) for i in range(n)])
    z1, z2 = np.meshgrid(q, q[::-1])
    return np.stack([z1, z2], axis=-1)


# --------------------------------------------------------------------------------------------
# Figures


def plot_history(history: list[dict] | Mapping) -> Figure:
    """Training curves: loss and test -ELBO, reconstruction term, KL term, per epoch.

    ``history`` is the list of dicts returned by ``fit`` (keys ``epoch``, ``train_loss``,
    ``reconstruction``, ``kl``, ``test_elbo``...) or a ``metrics.json`` dict holding it under
    ``"epochs"``. Three panels; a missing test ELBO is simply not drawn.
    Taught in notebook 05_training_on_mnist.
    """
    if isinstance(history, Mapping):
        history = history.get("epochs", [])
    history = list(history)
    if not history:
        raise ValueError("history is empty: train for at least one epoch first.")

    def column(key):
        return np.array(
            [np.nan if h.get(key) is None else float(h[key]) for h in history], dtype=float
        )

    epochs = np.array([h.get("epoch", i + 1) for i, h in enumerate(history)])
    fig = _new_figure(figsize=(12, 3.6))
    ax_loss, ax_rec, ax_kl = fig.subplots(1, 3)
    marker = "o" if len(epochs) <= 30 else None
    ax_loss.plot(epochs, column("train_loss"), marker=marker, label="train loss (-ELBO, with beta)")
    test = column("test_elbo")
    if np.isfinite(test).any():
        ax_loss.plot(epochs, -test, marker=marker, label="test -ELBO")
    ax_loss.set_title("Loss (nats per image, lower is better)")
    ax_loss.legend(fontsize=8)
    ax_rec.plot(epochs, column("reconstruction"), marker=marker, color="C2")
    ax_rec.set_title("Reconstruction: -log p(x|z)")
    ax_kl.plot(epochs, column("kl"), marker=marker, color="C3")
    ax_kl.set_title("KL(q(z|x) || p(z))")
    for ax in (ax_loss, ax_rec, ax_kl):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.set_ylabel("nats per image")
    return fig


def plot_reconstructions(model: keras.Model, images: np.ndarray, n: int = 10) -> Figure:
    """The first ``n`` images (top row) over their reconstructions (bottom row).

    A reconstruction is the decoder's pixel probabilities at the posterior mean. The figure
    has ``2 * n`` axes with one image each. Taught in notebook 06_latent_space.
    """
    n = check_int(n, "n", 1)
    images = np.asarray(images)[:n]
    n = len(images)
    if n == 0:
        raise ValueError("no images given: pass at least one image.")
    x = _model_batch(model, images)
    recon = _as_pictures(np.asarray(model.reconstruct(x)))
    fig = _new_figure(figsize=(1.2 * n, 2.8))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        _show(axes[0, i], _as_pictures(x[i : i + 1])[0])
        _show(axes[1, i], recon[i])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstruction")
    fig.suptitle("Originals (top) and reconstructions from the posterior mean (bottom)")
    return fig


def plot_samples(model: keras.Model, n: int = 64) -> Figure:
    """``n`` new images decoded from z drawn from the model's prior (``model.sample``), as one
    square-ish mosaic (one axes).

    Shown are the decoder's pixel probabilities (the mean image), not binary draws.
    Taught in notebook 06_latent_space.
    """
    n = check_int(n, "n", 1)
    pictures = _as_pictures(np.asarray(model.sample(n)))
    cols = math.ceil(math.sqrt(n))
    fig = _new_figure(figsize=(6, 6 * (-(-n // cols)) / cols + 0.4))
    ax = fig.subplots()
    _show(ax, _tile(pictures, cols))
    prior = getattr(getattr(model, "prior", None), "description", "the prior p(z)")
    ax.set_title(f"{n} samples from {prior} (pixel probabilities)")
    return fig


def plot_class_samples(
    model: keras.Model,
    n: int = 8,
    class_names: Sequence[str] | None = None,
    z: np.ndarray | None = None,
    seed: int | None = None,
) -> Figure:
    """A conditional model's samples: row c decodes the same ``n`` codes z under class c.

    Down a column the code z (the "style") stays and the class changes; along a row the
    class stays and z changes. ``z``: the codes (n, latent_dim), e.g. encoded images; by
    default ``n`` draws from N(0, I) fixed by ``seed``. The likelihood's means are shown.
    Taught in notebook 10_conditional_vae.
    """
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError(
            f"plot_class_samples needs a conditional model (vae_tutorial.ConditionalVAE); "
            f"{type(model).__name__} has no classes: use plot_samples."
        )
    if z is None:
        n = check_int(n, "n", 1)
        z = np.random.default_rng(seed).standard_normal((n, model.latent_dim))
    z = np.asarray(z, dtype=np.float32)
    n = len(z)
    codes = np.tile(z, (num_classes, 1))
    labels = np.repeat(np.arange(num_classes), n)
    pictures = _as_pictures(_decoded_means(model, codes, labels))
    fig = _new_figure(figsize=(0.7 * n + 1.6, 0.7 * num_classes + 0.5))
    ax = fig.subplots()
    _show(ax, _tile(pictures, n))
    side = pictures.shape[1]
    names = class_names if class_names is not None else [str(c) for c in range(num_classes)]
    ax.set_yticks(side * np.arange(num_classes) + side / 2, list(names), fontsize=8)
    ax.set_title("Same z down each column, one class per row (pixel probabilities)", fontsize=9)
    return fig


def plot_latent_scatter(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Posterior means of ``images``, one dot per image, coloured by its label.

    With ``latent_dim > 2`` the means are projected on their two directions of largest
    variance (PCA by numpy SVD, see :func:`pca_project`) and the title says so.
    Taught in notebook 06_latent_space.
    """
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels: pass one per image.")
    means = _encode_means(model, images)
    if means.shape[1] == 1:
        points = np.column_stack([means[:, 0], np.zeros(len(means))])
        title, xlabel, ylabel = "Posterior means (latent_dim = 1)", "z1", ""
    elif means.shape[1] == 2:
        points = means
        title, xlabel, ylabel = "Posterior means E[z | x]", "z1", "z2"
    else:
        points, ratio = pca_project(means, 2)
        title = (
            f"Posterior means, latent_dim = {means.shape[1]} projected to 2-d by PCA "
            f"(numpy SVD; {100 * ratio.sum():.0f}% of the variance)"
        )
        xlabel, ylabel = "principal component 1", "principal component 2"
    fig = _new_figure(figsize=(7, 6))
    ax = fig.subplots()
    classes = np.unique(labels)
    cmap = "tab10" if len(classes) <= 10 else "tab20"
    scatter = ax.scatter(
        points[:, 0], points[:, 1], c=labels, cmap=cmap, s=4, alpha=0.7, linewidths=0
    )
    handles, _ = scatter.legend_elements()
    names = [
        str(class_names[int(c)])
        if class_names is not None and 0 <= c < len(class_names)
        else str(c)
        for c in classes
    ]
    ax.legend(handles, names, fontsize=8, markerscale=1.2, loc="best", title="label")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def plot_manifold(model: keras.Model, n: int = 20) -> Figure:
    """Decode an ``n`` x ``n`` grid of latent codes into one mosaic: the learned manifold.

    Only for a 2-d latent space. The grid's coordinates are standard-normal quantiles
    (:func:`manifold_grid`), so it spans the N(0, I) prior evenly in probability (a learned
    prior it shows through the same window around 0).
    Taught in notebook 06_latent_space.
    """
    n = check_int(n, "n", 1)
    if model.latent_dim != 2:
        raise ValueError(
            f"plot_manifold needs a 2-d latent space, but this model has latent_dim="
            f"{model.latent_dim}. Train with latent_dim=2, or use plot_latent_scatter "
            "(which projects with PCA) or plot_samples."
        )
    grid = manifold_grid(n)
    pictures = _as_pictures(_decoded_means(model, grid.reshape(-1, 2).astype(np.float32)))
    side = pictures.shape[1]
    fig = _new_figure(figsize=(8, 8))
    ax = fig.subplots()
    ax.imshow(_tile(pictures, n), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # Label a few cells, always including both ends, so the axes read symmetrically.
    cells = np.unique(np.linspace(0, n - 1, min(n, 7)).round().astype(int))
    ticks = cells * side + side / 2
    ax.set_xticks(ticks, [f"{v:.1f}" for v in grid[0, cells, 0]])
    ax.set_yticks(ticks, [f"{v:.1f}" for v in grid[cells, 0, 1]])
    ax.set_xlabel("z1 (standard-normal quantiles)")
    ax.set_ylabel("z2")
    ax.set_title(f"Decoded {n} x {n} grid of the 2-d latent space")
    return fig


def plot_interpolation(
    model: keras.Model, image_a: np.ndarray, image_b: np.ndarray, steps: int = 10
) -> Figure:
    """Decode ``steps`` points on the straight line between the posterior means of two images.

    z_t = (1 - t) mu_a + t mu_b for t evenly spaced in [0, 1]; one axes per step.
    Taught in notebook 06_latent_space.
    """
    steps = check_int(steps, "steps", 1)
    if steps < 2:
        raise ValueError(f"steps must be at least 2 (the two end points), got {steps}.")
    pair = np.stack([_as_floats(image_a).reshape(-1), _as_floats(image_b).reshape(-1)])
    mu = np.asarray(model.encode(_model_batch(model, pair))[0], dtype=np.float32)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    z = (1.0 - t) * mu[0] + t * mu[1]
    pictures = _as_pictures(_decoded_means(model, z))
    fig = _new_figure(figsize=(1.2 * steps, 1.8))
    axes = fig.subplots(1, steps, squeeze=False)[0]
    for ax, picture, ti in zip(axes, pictures, t[:, 0], strict=True):
        _show(ax, picture, f"t={ti:.2f}")
    fig.suptitle("Linear interpolation between two posterior means")
    return fig
