"""Exploring a latent space by hand: sliders that decode an image while you move them.

``LatentExplorer`` is an ipywidgets box: one slider per latent coordinate and, optionally, a
selector between decoders (trained models, or one model under each label); every change decodes
z and redraws the image. It needs a running kernel: where a notebook is only read (the course
website, a code host's viewer) the notebooks' static figures stand in. Taught in notebook
06_latent_space, reused in 09_beta_and_posterior_collapse and 10_conditional_vae.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from vae_tutorial.validation import check_int

Decode = Callable[[np.ndarray], object]  # codes (1, latent_dim) -> pixel means, 784 per image


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:  # the lab and test extras install it
        raise ImportError(
            "the latent explorer needs ipywidgets: pip install ipywidgets (or "
            'pip install -e ".[lab]"), then restart the kernel.'
        ) from err
    return ipywidgets


def picture_png(pixels: object, scale: int = 4) -> bytes:
    """28x28 pixel means in [0, 1] (any shape with 784 values) as a grey PNG, ``scale``
    times larger. Taught in notebook 06_latent_space."""
    from PIL import Image  # Pillow: installed with matplotlib

    picture = np.asarray(pixels, dtype=np.float64).reshape(28, 28)
    levels = np.round(np.clip(np.kron(picture, np.ones((scale, scale))), 0.0, 1.0) * 255)
    buffer = io.BytesIO()
    Image.fromarray(levels.astype(np.uint8), mode="L").save(buffer, format="png")
    return buffer.getvalue()


class LatentExplorer:
    """Sliders for z (one per latent coordinate in ``dims``, default all, from ``-limit`` to
    ``limit``) and an image of the decoded pixel means, redrawn on every change.

    ``decoders``: name -> function from codes (1, latent_dim) to pixel means (784 values); with
    more than one, a selector moves between them at the same z (a beta per trained model in
    notebook 09, a label in notebook 10). ``start``: the first z, and the value of the coordinates
    without a slider (default 0, the mode of the N(0, I) prior).
    ``widget`` is what a notebook displays. Taught in notebook 06_latent_space.
    """

    def __init__(
        self,
        decoders: Mapping[str, Decode],
        latent_dim: int,
        *,
        limit: float = 3.0,
        start: Sequence[float] | None = None,
        dims: Sequence[int] | None = None,
        selector_name: str = "model",
    ) -> None:
        widgets = _widgets()
        latent_dim = check_int(latent_dim, "latent_dim", 1, fix="e.g. latent_dim=2.")
        if not decoders:
            raise ValueError("decoders is empty: give at least one, e.g. {'vae': decode}.")
        first = np.zeros(latent_dim) if start is None else np.asarray(start, dtype=np.float64)
        if first.shape != (latent_dim,):
            raise ValueError(f"start has shape {first.shape}; it needs ({latent_dim},).")
        self.dims = list(range(latent_dim)) if dims is None else [int(j) for j in dims]
        if not 1 <= len(self.dims) <= 16 or not set(self.dims) <= set(range(latent_dim)):
            raise ValueError(
                f"dims {self.dims} must pick 1 to 16 of the {latent_dim} coordinates: "
                "e.g. dims=[0, 1], or the most active units."
            )
        self.start = first
        self.decoders = dict(decoders)
        self.sliders = [
            widgets.FloatSlider(
                value=float(np.clip(first[j], -limit, limit)), min=-limit, max=limit, step=0.05,
                description=f"z[{j}]", continuous_update=True,
            )
            for j in self.dims
        ]  # fmt: skip
        self.selector = widgets.SelectionSlider(
            options=list(self.decoders), description=selector_name
        )
        self.image = widgets.Image(format="png")
        for control in (*self.sliders, self.selector):
            control.observe(self.redraw, names="value")
        controls = self.sliders + ([self.selector] if len(self.decoders) > 1 else [])
        self.widget = widgets.HBox([self.image, widgets.VBox(controls)])
        self.redraw()

    @property
    def z(self) -> np.ndarray:
        """The code shown, shape (1, latent_dim), float32: ``start`` with the sliders' values
        at ``dims``."""
        z = self.start.copy()
        z[self.dims] = [s.value for s in self.sliders]
        return z[np.newaxis].astype(np.float32)

    def redraw(self, change: object = None) -> None:
        """Decode the sliders' z with the selected decoder and show it."""
        pixels = self.decoders[self.selector.value](self.z)
        self.image.value = picture_png(np.asarray(pixels))

    def _repr_mimebundle_(self, **kwargs: object) -> dict:
        """The widget for a running kernel, and one plain line where none runs (the course
        website, a code host's viewer), instead of the widget's repr with the image's bytes."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = (
            f"LatentExplorer: {len(self.sliders)} slider(s) for z and {len(self.decoders)} "
            "decoder(s); it needs a running kernel (the static figures stand in without one)."
        )
        return bundle
