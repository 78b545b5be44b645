"""Which model to build, checked once: what the CLI's ``config.json`` and a checkpoint hold.

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from vae_tutorial.conditional import ConditionalVAE
from vae_tutorial.convolutional import ConvVAE
from vae_tutorial.hierarchical import HierarchicalVAE
from vae_tutorial.likelihoods import get_likelihood
from vae_tutorial.models import VAE
from vae_tutorial.priors import check_prior_config
from vae_tutorial.quantizer import VectorQuantizer
from vae_tutorial.validation import check_choice, check_hidden_sizes, check_int
from vae_tutorial.vqvae import VQVAE

MODEL_CLASSES: dict[str, type[keras.Model]] = {
    "mlp": VAE,
    "conv": ConvVAE,
    "conditional": ConditionalVAE,
    "hierarchical": HierarchicalVAE,
    "vqvae": VQVAE,
}
_MLP_WIDTHS = (128,)  # VAE's default, the original article's
_NUM_CLASSES = 10
_TOP_LATENT_DIM = 2
_NUM_CODES = 64  # VQVAE's default
_VQ_FIXED = {"commitment": 0.25, "decay": 0.99, "restart_after": None}  # VQVAE's defaults


@dataclass(frozen=True)
class ModelConfig:
    """A model's settings: ``ModelConfig(kind="mlp", latent_dim=2, intermediate_dim=(512,))``.

    ``kind`` is "mlp" (:class:`VAE`), "conv" (:class:`ConvVAE`) or "conditional"
    (:class:`ConditionalVAE`); ``intermediate_dim`` are the MLP's widths (None for "conv");
    ``likelihood`` is a name or config for :func:`get_likelihood`; ``num_classes`` is the
    conditional model's (None for the others); ``prior`` is a name or config for
    :func:`get_prior` ("normal", "mog", "vamp"; notebook 13_priors_and_hierarchy). For kind
    "hierarchical" (:class:`HierarchicalVAE`) ``latent_dim`` is the bottom layer's size (z1)
    and ``top_latent_dim`` the top's (z2; None for the others); ``num_codes`` and ``ema`` are
    the "vqvae"'s (:class:`VQVAE`, whose ``code_dim`` is ``latent_dim``; None for the others).
    Validated on creation; ``build(seed)`` makes the model, ``ModelConfig.of(model)`` reads
    one back. Taught in notebook 05_training_on_mnist.
    """

    kind: str = "mlp"
    latent_dim: int = 2
    intermediate_dim: Sequence[int] | None = None  # stored as a tuple
    likelihood: str | dict = "bernoulli"
    num_classes: int | None = None
    prior: str | dict = "normal"  # a config.json without one: the N(0, I) of notebooks 02-12
    top_latent_dim: int | None = None
    num_codes: int | None = None
    ema: bool | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the normalised values
        check_choice(self.kind, "kind", tuple(MODEL_CLASSES))
        set_(self, "latent_dim", check_int(self.latent_dim, "latent_dim", 1, fix="e.g. 2."))
        set_(self, "intermediate_dim", self._widths(self.intermediate_dim))
        set_(self, "likelihood", get_likelihood(self.likelihood).get_config())
        set_(self, "num_classes", self._classes(self.num_classes))
        set_(self, "prior", check_prior_config(self.prior))
        if self.kind in ("conditional", "hierarchical", "vqvae") and self.prior != "normal":
            raise ValueError(
                f"prior={self.prior!r} is p(z), and the {self.kind} model's prior is its own; "
                f"use prior='normal' with kind={self.kind!r}, or kind='mlp' or 'conv'."
            )
        set_(self, "top_latent_dim", self._top_latent_dim(self.top_latent_dim))
        num_codes, ema = self._vq_settings()
        set_(self, "num_codes", num_codes)
        set_(self, "ema", ema)

    def _widths(self, widths: int | Sequence[int] | None) -> tuple[int, ...] | None:
        if self.kind in ("conv", "vqvae"):
            if widths is not None:
                raise ValueError(
                    "intermediate_dim sets the MLP's widths; it does not apply to "
                    f"kind={self.kind!r}; leave it out."
                )
            return None
        return _MLP_WIDTHS if widths is None else tuple(check_hidden_sizes(widths))

    def _classes(self, num_classes: int | None) -> int | None:
        if self.kind != "conditional":
            if num_classes is not None:
                raise ValueError(
                    f"num_classes is the conditional model's; kind={self.kind!r} takes none."
                )
            return None
        if num_classes is None:
            return _NUM_CLASSES
        return check_int(num_classes, "num_classes", 2, fix="e.g. 10 for MNIST.")

    def _top_latent_dim(self, top: int | None) -> int | None:
        if self.kind != "hierarchical":
            if top is not None:
                raise ValueError(
                    "top_latent_dim is the size of the top layer of kind='hierarchical'; "
                    f"kind={self.kind!r} has one latent layer: leave it out."
                )
            return None
        return (
            _TOP_LATENT_DIM if top is None else check_int(top, "top_latent_dim", 1, fix="e.g. 2.")
        )

    def _vq_settings(self) -> tuple[int | None, bool | None]:
        """The VQ-VAE's ``num_codes`` and ``ema``, checked as its quantizer checks them."""
        if self.kind != "vqvae":
            for name in ("num_codes", "ema"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is the VQ-VAE's; kind={self.kind!r} takes none.")
            return None, None
        num_codes = _NUM_CODES if self.num_codes is None else self.num_codes
        quantizer = VectorQuantizer(num_codes, self.latent_dim, ema=self.ema or False)
        return quantizer.num_codes, quantizer.ema

    def build(self, seed: int | None = None) -> keras.Model:
        """A new, untrained model of these settings; ``seed`` seeds its sampling noise."""
        settings: dict[str, Any] = {
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "seed": seed,
        }
        if self.prior != "normal":  # the kinds that carry a prior of their own
            settings["prior"] = self.prior
        if self.intermediate_dim is not None:
            settings["intermediate_dim"] = list(self.intermediate_dim)
        if self.num_classes is not None:
            settings["num_classes"] = self.num_classes
        if self.top_latent_dim is not None:
            settings["latent_dims"] = (settings.pop("latent_dim"), self.top_latent_dim)
        if self.kind == "vqvae":
            settings["code_dim"] = settings.pop("latent_dim")
            settings.update(num_codes=self.num_codes, ema=self.ema)
        return MODEL_CLASSES[self.kind](**settings)

    @classmethod
    def of(cls, model: keras.Model) -> ModelConfig | None:
        """The settings ``model`` was built with; None for a class not in ``MODEL_CLASSES``
        (a model of your own) or a VAE of another input size."""
        kind = next((k for k, c in MODEL_CLASSES.items() if type(model) is c), None)
        if kind is None or getattr(model, "input_dim", 784) != 784:
            return None
        config = model.get_config()
        if kind == "vqvae":
            if any(config[k] != v for k, v in _VQ_FIXED.items()):
                return None  # a quantizer setting a ModelConfig does not hold
            return cls(
                kind=kind, latent_dim=config["code_dim"], likelihood=config["likelihood"],
                num_codes=config["num_codes"], ema=config["ema"],
            )  # fmt: skip
        latent_dim, top_latent_dim = config.get("latent_dims", (config.get("latent_dim"), None))
        return cls(
            kind=kind,
            latent_dim=latent_dim,
            intermediate_dim=config.get("intermediate_dim"),
            likelihood=config["likelihood"],
            num_classes=config.get("num_classes"),
            prior=config.get("prior", "normal"),
            top_latent_dim=top_latent_dim,
        )

    @classmethod
    def from_dict(cls, settings: dict) -> ModelConfig:
        """The inverse of :meth:`as_dict` (``config.json``'s "model")."""
        return cls(**settings)

    def as_dict(self) -> dict:
        """The settings as a plain dict (JSON-ready)."""
        settings = dataclasses.asdict(self)
        if self.intermediate_dim is not None:
            settings["intermediate_dim"] = list(self.intermediate_dim)
        for name in ("top_latent_dim", "num_codes", "ema"):  # one kind's settings, None otherwise:
            if settings[name] is None:  # absent, as in config.json files written before them
                del settings[name]
        return settings

    def describe(self) -> str:
        """One line for a log: e.g. "MLP VAE 784-512-2", "ConvVAE, latent_dim 2, prior mog"."""
        prior = self.prior if isinstance(self.prior, str) else self.prior["name"]
        prior = "" if prior == "normal" else f", prior {prior}"
        if self.kind == "conv":
            return f"ConvVAE, latent_dim {self.latent_dim}{prior}"
        if self.kind == "vqvae":
            ema = ", EMA codebook" if self.ema else ""
            return f"VQ-VAE, 7x7 codes out of {self.num_codes} of dimension {self.latent_dim}{ema}"
        widths = "-".join(str(w) for w in self.intermediate_dim or ())
        if self.kind == "hierarchical":
            z1, z2 = self.latent_dim, self.top_latent_dim
            return f"hierarchical MLP VAE 784-{widths}-{z1}-{widths}-{z2} (z1-z2)"
        kind = "conditional MLP VAE" if self.kind == "conditional" else "MLP VAE"
        return f"{kind} 784-{widths}-{self.latent_dim}{prior}"
