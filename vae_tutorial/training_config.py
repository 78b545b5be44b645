"""One training run's settings, checked once: what fit takes and the CLI's flags are built from.

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vae_tutorial.batching import BINARIZE_MODES
from vae_tutorial.iwae import ESTIMATORS
from vae_tutorial.validation import check_choice, check_finite_number, check_int

OBJECTIVES = ("elbo", "iwae")


def _setting(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class TrainingConfig:
    """How to train: ``TrainingConfig(epochs=10, batch_size=128, ...)``, validated on creation.

    A bad value raises ``ValueError`` (``TypeError`` for a wrong type) naming the fix.
    ``as_dict()`` is what the CLI writes into ``config.json``.
    Taught in notebook 05_training_on_mnist.
    """

    epochs: int = _setting(10, "total number of epochs; a re-run continues up to this many")
    batch_size: int = _setting(128, "images per gradient step")
    learning_rate: float = _setting(1e-3, "Adam learning rate")
    beta: float = _setting(1.0, "weight of the KL term (1 is the ELBO)")
    kl_warmup_epochs: int = _setting(
        0, "ramp the KL weight linearly from 0 to beta over this many epochs (0: no ramp)"
    )
    binarize: str = _setting(
        "dynamic",
        "dynamic: fresh Bernoulli pixels each epoch (the literature's protocol); "
        "static: one fixed draw; none: grey levels; dequantize: grey levels plus uniform "
        "noise within each 8-bit level (for the density likelihoods)",
    )
    seed: int = _setting(0, "seeds the weights, the batch order and the binarization")
    free_bits: float = _setting(
        0.0,
        "free bits (Kingma et al. 2016): each latent dimension's batch-mean KL is charged at "
        "least this many nats (0: off)",
    )
    objective: str = _setting(
        "elbo",
        "elbo: the evidence lower bound of notebooks 02-05; iwae: the importance-weighted "
        "bound L_k (Burda et al. 2015; notebook 12)",
    )
    k: int = _setting(1, "importance samples per image of objective iwae (k=1: the ELBO)")
    estimator: str = _setting(
        "plain",
        "the encoder's gradient under objective iwae: plain (IWAE's) or dreg (doubly "
        "reparameterized, Tucker et al. 2018: same mean, less noise)",
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the normalised values
        set_(self, "epochs", check_int(self.epochs, "epochs", 1, fix="e.g. 10."))
        set_(self, "batch_size", check_int(self.batch_size, "batch_size", 1, fix="e.g. 128."))
        set_(
            self,
            "kl_warmup_epochs",
            check_int(self.kl_warmup_epochs, "kl_warmup_epochs", 0, fix="0 for no ramp, e.g. 10."),
        )
        set_(self, "seed", check_int(self.seed, "seed", 0, 2**31 - 1, fix="e.g. 0."))
        set_(self, "beta", check_finite_number(self.beta, "beta", fix="1.0 is the ELBO."))
        set_(
            self,
            "free_bits",
            check_finite_number(self.free_bits, "free_bits", fix="0 turns it off; e.g. 0.25."),
        )
        set_(
            self,
            "learning_rate",
            check_finite_number(
                self.learning_rate, "learning_rate", exclusive=True, fix="e.g. 1e-3."
            ),
        )
        check_choice(self.binarize, "binarize", BINARIZE_MODES)
        check_choice(self.objective, "objective", OBJECTIVES)
        set_(self, "k", check_int(self.k, "k", 1, fix="e.g. 5 importance samples."))
        check_choice(self.estimator, "estimator", ESTIMATORS)
        self._check_objective()

    def _check_objective(self) -> None:
        """k and estimator set objective iwae; beta, warm-up and free bits belong to elbo."""
        if self.objective == "elbo":
            for name, value, default in (("k", self.k, 1), ("estimator", self.estimator, "plain")):
                if value != default:
                    raise ValueError(
                        f"{name}={value!r} sets the importance-weighted bound: add "
                        f"objective='iwae' (the ELBO takes {name}={default!r})."
                    )
            return
        for name, off in (("beta", 1.0), ("kl_warmup_epochs", 0), ("free_bits", 0.0)):
            value = getattr(self, name)
            if value != off:
                raise ValueError(
                    f"objective='iwae' trains the bound L_k, which has no KL term to weigh, "
                    f"ramp or floor: use {name}={off!r} (or objective='elbo' for {name}={value!r})."
                )

    def as_dict(self) -> dict:
        """The settings as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)
