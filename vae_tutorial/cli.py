"""The command line: ``python -m vae_tutorial train ...`` and ``... evaluate ...``.

``train`` fits a VAE on MNIST or Fashion-MNIST and writes into ``--out``: ``config.json``,
``metrics.json``, checkpoints (``checkpoints/``) and PNG figures. Running the same command
again resumes from the last checkpoint; a larger ``--epochs`` continues training.
``evaluate`` restores a run and adds the importance-weighted estimate of the test
log-likelihood to its ``metrics.json``; with ``--ood-data`` also the AUROC of each
out-of-distribution score (notebook 15_out_of_distribution).

Taught in notebook 05_training_on_mnist.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from pathlib import Path

# Figures are written to files: never ask for a window (set before pyplot can be imported).
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vae_tutorial as vt  # noqa: E402
from vae_tutorial.batching import BINARIZE_MODES, HELD_OUT_EPOCH, held_out_batches  # noqa: E402
from vae_tutorial.checkpoints import read_history  # noqa: E402
from vae_tutorial.distributed import is_chief  # noqa: E402
from vae_tutorial.environment import data_dir as env_data_dir  # noqa: E402
from vae_tutorial.iwae import ESTIMATORS  # noqa: E402
from vae_tutorial.likelihoods import LIKELIHOODS, get_likelihood  # noqa: E402
from vae_tutorial.model_config import MODEL_CLASSES, ModelConfig  # noqa: E402
from vae_tutorial.objectives import elbo_evaluator_for  # noqa: E402
from vae_tutorial.ood import ood_table  # noqa: E402
from vae_tutorial.priors import PRIORS  # noqa: E402
from vae_tutorial.training_config import OBJECTIVES, TrainingConfig  # noqa: E402
from vae_tutorial.validation import check_binarize_for_likelihood, check_int  # noqa: E402
from vae_tutorial.vqvae import VQVAE, check_vq_training  # noqa: E402

DATASETS = ("mnist", "fashion_mnist")
OOD_DATA = (*DATASETS, "noise")
OOD_LEVEL = 0.95  # of the AUROC's interval
OOD_BATCH = 10  # images per batch of the typicality test
# The CLI's training settings: TrainingConfig's, but 30 epochs. With a 2-d latent (so the
# manifold and the scatter plot exist) a run takes two to three minutes on a 2-core laptop
# CPU on the 60,000 Fashion-MNIST images.
CLI_EPOCHS = 30
LATENT_DIM = 2
VQ_CODE_DIM = 16  # --model vqvae: each code vector's dimension
INTERMEDIATE_DIM = [512]
SCATTER_IMAGES = 5000
STRATEGIES = ("none", "mirrored", "multi-worker")
TRAINING_FIELDS = dataclasses.fields(TrainingConfig)
DEF = "(default: %(default)s)"


class CLIError(Exception):
    """A problem the user can fix; ``main`` prints it as one ``error:`` line."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one ``error:`` line (exit 2), not usage plus error."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


# --------------------------------------------------------------------------------------------
# Flag types: each rejects a bad value with a message that says what is expected.


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            return check_int(int(text), "value", minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None

    return parse


_positive_int = _int_at_least(1)


def _number(kind: type):
    """An int or float flag; its range is TrainingConfig's to check, once, in _train_config."""

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None

    return parse


def _int_list(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one width or a comma list such as 512,512, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m vae_tutorial",
        description="Train and evaluate variational autoencoders on MNIST / Fashion-MNIST.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{train,evaluate}", required=True)

    train = commands.add_parser(
        "train",
        help="train a VAE (re-running the same command resumes from the checkpoint)",
        description=(
            "Train a VAE and write config.json, metrics.json, checkpoints/ and PNG figures "
            "into --out. Running the same command again resumes from the last checkpoint; "
            "a larger --epochs continues training. ELBOs are in nats per image (negative; "
            "higher is better)."
        ),
    )
    train.add_argument("--dataset", choices=DATASETS, default="mnist", help="(default: mnist)")
    train.add_argument(
        "--data-dir",
        default=None,
        help="folder with the dataset's IDX files or .npz (default: $VAE_TUTORIAL_DATA_DIR; "
        "unset: download, or offline the dataset's bundled sample)",
    )
    train.add_argument(
        "--latent-dim",
        type=_positive_int,
        default=None,
        help=f"(default: {LATENT_DIM}; with --model vqvae each code vector's dimension, "
        f"default {VQ_CODE_DIM})",
    )
    train.add_argument(
        "--top-latent-dim",
        type=_positive_int,
        default=None,
        help="with --hierarchical: the top layer's size z2; --latent-dim is the bottom's z1 "
        "(default: 2)",
    )
    train.add_argument(
        "--intermediate-dim",
        type=_int_list,
        default=None,
        help="hidden width(s) of the MLP: one int or a comma list like 512,512 "
        f"(default {','.join(map(str, INTERMEDIATE_DIM))}; not used with --conv)",
    )
    for setting in dataclasses.fields(TrainingConfig):
        default = CLI_EPOCHS if setting.name == "epochs" else setting.default
        choices = {
            "binarize": BINARIZE_MODES,
            "objective": OBJECTIVES,
            "estimator": ESTIMATORS,
        }.get(setting.name)
        train.add_argument(
            "--" + setting.name.replace("_", "-"),
            type=str if choices else _number(type(setting.default)),
            choices=choices,
            default=default,
            help=f"{setting.metadata['help']} {DEF}",
        )
    train.add_argument(
        "--out",
        default=None,
        help="run directory (default runs/<dataset>-latent<D>, "
        "runs/<dataset>-conv-latent<D> with --conv, runs/<dataset>-conditional-latent<D> "
        "with --conditional, runs/<dataset>-hierarchical-latent<D> with --hierarchical; -mog- or "
        "-vamp- before latent<D> with --prior)",
    )
    train.add_argument(
        "--tensorboard", action="store_true", help="write TensorBoard logs into OUT/tensorboard"
    )
    train.add_argument("--conv", action="store_true", help="train the convolutional VAE")
    train.add_argument(
        "--conditional",
        action="store_true",
        help="train the conditional VAE (MLP), conditioned on the dataset's labels",
    )
    train.add_argument(
        "--hierarchical",
        action="store_true",
        help="train the two-layer hierarchical (ladder) VAE (MLP); see --top-latent-dim",
    )
    train.add_argument(
        "--model",
        choices=tuple(MODEL_CLASSES),
        default=None,
        help="the model to train (default: mlp; --conv, --conditional and --hierarchical "
        "choose the others); vqvae: the VQ-VAE, a 7x7 grid of discrete codes",
    )
    train.add_argument(
        "--num-codes",
        type=_int_at_least(2),
        default=None,
        help="--model vqvae: the codebook's size K (default 64)",
    )
    train.add_argument(
        "--ema",
        action="store_true",
        help="--model vqvae: learn the codebook by moving averages instead of its loss",
    )
    distributions = {  # flag: (its choices, the default, what it chooses)
        "--likelihood": (LIKELIHOODS, "bernoulli", "the decoder's distribution p(x | z); all "
                         "but bernoulli need --binarize dequantize (discretized_logistic: none)"),
        "--prior": (PRIORS, "normal", "the prior p(z): N(0, I), a learned mixture of Gaussians "
                    "(mog) or the VampPrior (vamp), whose KL fit estimates by Monte Carlo "
                    "(notebook 13)"),
    }  # fmt: skip
    for flag, (names, default, help_text) in distributions.items():
        train.add_argument(flag, choices=tuple(names), default=default, help=f"{help_text} {DEF}")
    train.add_argument(
        "--limit-train",
        type=_positive_int,
        default=None,
        metavar="N",
        help="for quick runs and tests: use only the first N training images",
    )
    train.add_argument(
        "--limit-test",
        type=_positive_int,
        default=None,
        metavar="N",
        help="for quick runs and tests: use only the first N test images",
    )
    train.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    train.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="none",
        help="none: one device; mirrored: every GPU of this machine (MirroredStrategy); "
        "multi-worker: the machines listed in $TF_CONFIG (MultiWorkerMirroredStrategy; run "
        "the same command on each, the chief writes --out) " + DEF,
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="estimate a trained run's test log-likelihood (importance-weighted bound)",
        description=(
            "Restore the model of a `train` run from its checkpoint, compute the importance-"
            "weighted bound L_k (an estimate of log p(x)) and the single-sample ELBO on the "
            'test split, print them and add them to OUT/metrics.json under "iwae".'
        ),
    )
    evaluate.add_argument("--out", required=True, help="the run directory written by `train`")
    evaluate.add_argument(
        "--k", type=_positive_int, default=1000, help="importance samples per image " + DEF
    )
    evaluate.add_argument(
        "--max-images",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use only the first N test images (default: all)",
    )
    evaluate.add_argument(
        "--batch-size", type=_positive_int, default=100, help="test images per batch " + DEF
    )
    evaluate.add_argument(
        "--data-dir", default=None, help="override the data folder recorded in config.json"
    )
    evaluate.add_argument(
        "--ood-data",
        choices=OOD_DATA,
        default=None,
        help="also score this dataset's test images (or uniform noise) as out of distribution "
        'and add each score\'s AUROC to metrics.json under "ood"',
    )
    return parser


# --------------------------------------------------------------------------------------------
# Helpers


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CLIError(
            f"{path} is not valid JSON ({error}); delete it or use a new --out."
        ) from None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves half a file


def _latest_checkpoint(out: Path) -> str | None:
    folder = out / "checkpoints"
    return tf.train.latest_checkpoint(str(folder)) if folder.is_dir() else None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A run directory's ``config.json``: the data, the model, the training, the run's files."""

    data: dict  # dataset, data_dir, limit_train, limit_test
    model: ModelConfig
    training: TrainingConfig
    run: dict  # out, tensorboard, strategy

    @classmethod
    def read(cls, path: Path) -> RunConfig | None:
        """The config.json at ``path`` (None if there is none), checked."""
        saved = _read_json(path)
        if saved is None:
            return None
        try:
            return cls(
                data=saved["data"],
                model=ModelConfig.from_dict(saved["model"]),
                training=TrainingConfig(**saved["training"]),
                run=saved["run"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CLIError(
                f"{path} is not a config.json of this version of vae_tutorial ({error}); "
                "train into a new --out."
            ) from None

    def as_dict(self) -> dict:
        return {
            "data": self.data,
            "model": self.model.as_dict(),
            "training": self.training.as_dict(),
            "run": self.run,
        }

    def build_model(self) -> keras.Model:
        return self.model.build(seed=self.training.seed)

    def labels(self, labels):
        """The labels a conditional run trains and scores with (None for the others)."""
        return labels if self.model.kind == "conditional" else None

    def model_data(self, images, labels):
        """What fit trains on: the images, paired with their labels for a conditional run."""
        return images if self.labels(labels) is None else (images, labels)


def _load_data(settings: dict):
    """The data of ``config.json``'s "data": the dataset, cut to the limits."""
    data = vt.load_dataset(settings["dataset"], settings["data_dir"])
    n_train, n_test = settings["limit_train"], settings["limit_test"]
    if n_train is not None or n_test is not None:
        data = data.subset(
            None if n_train is None else min(n_train, len(data.train_images)),
            None if n_test is None else min(n_test, len(data.test_images)),
        )
    return data


def _metrics(data, config: RunConfig, history: list[dict], previous: dict | None) -> dict:
    metrics = {
        "dataset": data.name,
        "source": data.source,
        "config": config.as_dict(),
        "epochs": history,
        "test_elbo": history[-1]["test_elbo"] if history else None,
        "finished": len(history) >= config.training.epochs,
        "train_seconds": sum(h.get("seconds", 0.0) for h in history),
    }
    # An IWAE estimate stays valid only for the very model it was computed on.
    if previous and "iwae" in previous and previous["iwae"].get("epoch") == len(history):
        metrics["iwae"] = previous["iwae"]
    return metrics


def _save_figures(out: Path, model, data, history: list[dict]) -> list[str]:
    conditional = getattr(model, "num_classes", None) is not None
    vq = isinstance(model, VQVAE)  # no KL, no continuous latent: no curves of them, no scatter
    figures = {} if vq else {"loss_curves.png": lambda: vt.plot_history(history)}
    if conditional:  # one class a row; the scatter and manifold would need a label each
        figures["samples.png"] = lambda: vt.plot_class_samples(model, class_names=data.class_names)
    else:
        figures["reconstructions.png"] = lambda: vt.plot_reconstructions(
            model, data.test_images, n=10
        )
        figures["samples.png"] = lambda: vt.plot_samples(model, n=64)
    if model.latent_dim == 2 and not conditional and not vq:
        n = min(len(data.test_images), SCATTER_IMAGES)
        figures["latent_scatter.png"] = lambda: vt.plot_latent_scatter(
            model, data.test_images[:n], data.test_labels[:n], class_names=data.class_names
        )
        figures["manifold.png"] = lambda: vt.plot_manifold(model, n=20)
    written = []
    with np.errstate(all="ignore"):
        for name, make in figures.items():
            make().savefig(out / name, dpi=100)
            written.append(name)
    return written


# --------------------------------------------------------------------------------------------
# Commands


def _train_config(args) -> RunConfig:
    """config.json from the flags: each setting checked once, here."""
    data_dir = args.data_dir if args.data_dir is not None else env_data_dir()
    if data_dir is not None:
        data_dir = str(Path(data_dir).expanduser().resolve())
    kind = "conv" if args.conv else "conditional" if args.conditional else "mlp"
    if args.hierarchical:
        if args.conv or args.conditional:
            raise CLIError(
                "--hierarchical trains the two-layer MLP VAE; it cannot be combined with "
                f"{'--conv' if args.conv else '--conditional'}.",
                exit_code=2,
            )
        kind = "hierarchical"
    if args.conv and args.conditional:
        raise CLIError(
            "--conditional trains the conditional MLP VAE; it cannot be combined with --conv.",
            exit_code=2,
        )
    if args.conditional and args.prior != "normal":
        raise CLIError(
            f"--prior {args.prior} learns p(z), but the conditional VAE's prior is N(0, I); "
            "drop --prior or --conditional.",
            exit_code=2,
        )
    if args.model is not None and kind not in ("mlp", args.model):
        raise CLIError(
            f"--{kind} and --model {args.model} choose two models; give one of them.", exit_code=2
        )
    kind = args.model or kind
    latent_dim = args.latent_dim or (VQ_CODE_DIM if kind == "vqvae" else LATENT_DIM)
    try:
        model = ModelConfig(
            kind=kind,
            latent_dim=latent_dim,
            intermediate_dim=args.intermediate_dim
            or (INTERMEDIATE_DIM if kind in ("mlp", "conditional") else None),
            likelihood=args.likelihood,
            prior=args.prior,
            top_latent_dim=args.top_latent_dim,
            num_codes=args.num_codes,
            ema=True if args.ema else None,
        )
        training = TrainingConfig(**{f.name: getattr(args, f.name) for f in TRAINING_FIELDS})
        check_binarize_for_likelihood(training.binarize, get_likelihood(model.likelihood))
        if kind == "vqvae":
            check_vq_training(training)
    except (TypeError, ValueError) as error:
        raise CLIError(_as_flags(str(error)), exit_code=2) from None
    out = args.out
    if out is None:
        prefix = "".join(f"{part}-" for part in (kind, args.prior) if part not in ("mlp", "normal"))
        out = f"runs/{args.dataset}-{prefix}latent{latent_dim}"
    return RunConfig(
        data={
            "dataset": args.dataset,
            "data_dir": data_dir,
            "limit_train": args.limit_train,
            "limit_test": args.limit_test,
        },
        model=model,
        training=training,
        run={"out": str(out), "tensorboard": bool(args.tensorboard), "strategy": args.strategy},
    )


def _as_flags(message: str) -> str:
    """A config's error in the flags' words: "batch_size must ..." -> "--batch-size must ..."."""
    names = [f.name for f in TRAINING_FIELDS] + [f.name for f in dataclasses.fields(ModelConfig)]
    for name in names:
        message = re.sub(rf"(?<![-\w]){name}\b", "--" + name.replace("_", "-"), message)
    return message.replace("kind='conv'", "--conv")


def _strategy(name: str):
    """The tf.distribute strategy of ``--strategy``, made before TensorFlow runs anything."""
    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not os.environ.get("TF_CONFIG"):
        raise CLIError(
            "--strategy multi-worker reads the cluster from $TF_CONFIG, which is not set: on "
            'each machine set TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": I}}\' (I: this machine\'s place in the list).',
            exit_code=2,
        )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _flat(config: dict) -> dict:
    """config.json's sections as one dict: {"model.latent_dim": 2, ...}."""
    return {f"{part}.{k}": v for part, section in config.items() for k, v in section.items()}


def _check_resumable(out: Path, saved: dict, new: dict) -> None:
    """Refuse to resume another model or dataset; note the settings that changed."""
    before, now = _flat(saved), _flat(new)
    fixed = [k for k in now if k.startswith("model.")] + ["data.dataset"]
    changed = [k for k in fixed if before.get(k) != now[k]]
    if changed:
        diffs = ", ".join(f"{k} {before.get(k)!r} -> {now[k]!r}" for k in changed)
        raise CLIError(
            f"{out} holds a run with another model or dataset ({diffs}); use a new --out "
            "for this one (or the old flags to resume it)."
        )
    free = set(now) - set(fixed) - {"training.epochs", "run.out"}
    others = [k for k in now if k in free and before.get(k) != now[k]]
    if others:
        print(
            f"note: resuming {out} with changed settings: "
            + ", ".join(f"{k} {before.get(k)!r} -> {now[k]!r}" for k in others)
        )


def cmd_train(args: argparse.Namespace) -> int:
    strategy = _strategy(args.strategy)
    chief = is_chief(strategy)  # on a cluster only the chief writes into --out
    config = _train_config(args)
    out = Path(config.run["out"])
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is not a directory; pick another --out.")
    saved = RunConfig.read(out / "config.json")
    if saved is not None and _latest_checkpoint(out) is not None:
        _check_resumable(out, saved.as_dict(), config.as_dict())

    data = _load_data(config.data)
    print(
        f"Data: {data.source} ({len(data.train_images):,} train, "
        f"{len(data.test_images):,} test images)"
    )
    # Keras draws each layer's initializer seed from Python's random module when the layer is
    # made: seeding first makes --seed fix the initial weights too.
    training = config.training
    keras.utils.set_random_seed(training.seed)
    model = config.build_model()
    print(
        f"Model: {config.model.describe()}; batch {training.batch_size}, {training.epochs} "
        f"epochs, binarize {training.binarize}; run directory {out}"
    )
    out.mkdir(parents=True, exist_ok=True)
    if chief:
        _write_json(out / "config.json", config.as_dict())
    previous = _read_json(out / "metrics.json")

    def write_metrics(history):  # after every epoch: nothing finished is ever lost
        if chief:
            _write_json(out / "metrics.json", _metrics(data, config, history, previous))

    started = time.perf_counter()
    history: list[dict] | None
    try:
        history = vt.fit(
            model,
            config.model_data(data.train_images, data.train_labels),
            config.model_data(data.test_images, data.test_labels),
            training,
            checkpoint_dir=out / "checkpoints",
            tensorboard_dir=(out / "tensorboard") if config.run["tensorboard"] else None,
            on_epoch_end=write_metrics,
            strategy=strategy,
        )
    except (KeyboardInterrupt, FloatingPointError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not _is_interrupt(error):
            raise
        history = getattr(error, "history", None)
        if history is None:
            history = read_history(_latest_checkpoint(out)) or []
        write_metrics(history)
        kept = (
            f"the checkpoint in {out / 'checkpoints'} is kept ({len(history)} epoch(s) "
            "done); run the same command again to resume"
        )
        if _is_interrupt(error):
            raise CLIError(f"interrupted; {kept}.", exit_code=130) from None
        raise CLIError(
            f"{' '.join(str(error).split())} ({kept} after changing the "
            "settings, or use a new --out)."
        ) from None

    write_metrics(history)
    if not chief:
        print(f"This worker trained {len(history)} epoch(s); the chief writes into {out}.")
        return 0
    written = [] if args.no_figures else _save_figures(out, model, data, history)
    new = time.perf_counter() - started
    print(
        f"Wrote config.json, metrics.json{''.join(', ' + w for w in written)} into {out} "
        f"({new:.0f} s)."
    )
    if history:
        last = history[-1]
        print(
            f"Test ELBO after epoch {last['epoch']}: {last['test_elbo']:.2f} nats per image "
            f"(train loss {last['train_loss']:.2f})."
        )
    if not isinstance(model, VQVAE):
        print(f"Estimate log p(x): python -m vae_tutorial evaluate --out {out} --k 1000")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    config = RunConfig.read(out / "config.json")
    if config is None:
        raise CLIError(
            f"{out / 'config.json'} not found: --out must be a directory written by "
            "`python -m vae_tutorial train`."
        )
    if config.model.kind == "vqvae":
        raise CLIError(
            "evaluate importance-samples a Gaussian latent; a VQ-VAE's one-hot codes need no "
            f"sampling (KL = 49 log K): its test ELBO is test_elbo in {out / 'metrics.json'}."
        )
    checkpoint = _latest_checkpoint(out)
    if checkpoint is None:
        raise CLIError(
            f"no checkpoint in {out / 'checkpoints'}: train at least one epoch "
            "first (python -m vae_tutorial train --out ...)."
        )
    data_settings = config.data
    if args.data_dir is not None:
        data_dir = str(Path(args.data_dir).expanduser().resolve())
        data_settings = {**data_settings, "data_dir": data_dir}

    data = _load_data(data_settings)
    test = data.test_images if args.max_images is None else data.test_images[: args.max_images]
    test_labels = config.labels(data.test_labels[: len(test)])
    outside = (
        None
        if args.ood_data is None
        else _ood_images(args.ood_data, config, data_settings, len(test))
    )
    model = config.build_model()
    history = vt.restore_run(model, out / "checkpoints")
    training = config.training
    keras.utils.set_random_seed(training.seed)

    def batches():  # the held-out batches fit scored every epoch on
        return held_out_batches(test, batch_size=args.batch_size, binarize=training.binarize,
                                seed=training.seed, labels=test_labels)  # fmt: skip

    print(
        f"Evaluating {config.model.describe()} after {len(history)} epoch(s) on {len(test):,} test "
        f"images of {data.source}, k = {args.k} ...",
        flush=True,
    )
    started = time.perf_counter()
    elbo = elbo_evaluator_for(model)(model, batches())["elbo"]
    log_likelihood = vt.evaluate_iwae(model, batches(), args.k)
    seconds = time.perf_counter() - started
    target = "log p(x)" if test_labels is None else "log p(x | y)"  # a conditional run's bound
    bits = _bits_per_pixel(model, training.binarize, log_likelihood)
    result = {
        "k": args.k,
        "log_likelihood": log_likelihood,
        "bits_per_dim": bits,
        "elbo": elbo,
        "images": len(test),
        "epoch": len(history),
        "binarize": training.binarize,
        "seconds": seconds,
    }
    metrics = _read_json(out / "metrics.json") or _metrics(data, config, history, None)
    metrics["iwae"] = result
    if outside is not None:
        ood = _ood_scores(model, config, (data.train_images[: len(test)], test, outside), args)
        metrics["ood"] = {**metrics.get("ood", {}), args.ood_data: ood}
    _write_json(out / "metrics.json", metrics)
    in_bits = "" if bits is None else f" (<= {bits:.3f} bits per pixel)"
    print(
        f"IWAE estimate of {target}, k = {args.k}: {log_likelihood:.2f} nats per image"
        f"{in_bits}; single-sample ELBO {elbo:.2f} ({len(test):,} images, {seconds:.0f} s). "
        f"Added to {out / 'metrics.json'}."
    )
    return 0


def _bits_per_pixel(model, binarize, log_likelihood):
    """The bound in bits per pixel (notebook 08_likelihoods_for_grey_pixels), or None where
    the likelihood is no likelihood of the data (a Bernoulli on grey values)."""
    if binarize not in model.likelihood.scores_data:
        return None
    pixels = int(np.prod(model.event_shape))
    return vt.bits_per_dim(log_likelihood, dims=pixels, dequantized=binarize == "dequantize")


def _ood_images(name: str, config: RunConfig, data_settings: dict, n: int) -> np.ndarray:
    """``n`` images of ``--ood-data``: another dataset's test split, or uniform noise."""
    if config.model.kind == "conditional":
        raise CLIError(
            "--ood-data scores log p(x), but a conditional run models log p(x | y) and "
            "out-of-distribution images have no label; evaluate it without --ood-data.",
            exit_code=2,
        )
    if name == "noise":
        return np.random.default_rng(config.training.seed).integers(0, 256, (n, 28, 28), np.uint8)
    if name == config.data["dataset"]:
        others = ", ".join(d for d in OOD_DATA if d != name)
        raise CLIError(
            f"--ood-data {name} is the run's own dataset; use one of {others}.", exit_code=2
        )
    return vt.load_dataset(name, data_settings["data_dir"]).test_images[:n]


def _ood_scores(model, config: RunConfig, images: tuple, args) -> dict:
    """Each out-of-distribution score's AUROC, printed as a table (notebook
    15_out_of_distribution). ``images``: as many training, test and foreign images, each
    binarized as the run's held-out batches are."""
    training = config.training
    train, inside, foreign = (
        vt.binarize_images(x, training.binarize, seed=training.seed, epoch=HELD_OUT_EPOCH)
        for x in images
    )
    rows = ood_table(
        model,
        inside,
        foreign,
        train_images=train,
        typicality_batch=OOD_BATCH,
        k=args.k,
        seed=training.seed,
        batch_size=args.batch_size,
        level=OOD_LEVEL,
    )
    print(
        f"Out of distribution: {len(inside):,} test images against {len(foreign):,} of "
        f"{args.ood_data} (typicality: batches of {OOD_BATCH}); a higher score means more "
        "likely out of distribution.\n"
        f"{'score':<28} {'AUROC':>6}  {OOD_LEVEL:.0%} interval"
    )
    for row in rows:
        print(f"{row['score']:<28} {row['auroc']:6.3f}  [{row['low']:.3f}, {row['high']:.3f}]")
    return {
        "images_in": len(inside),
        "images_out": len(foreign),
        "typicality_batch": OOD_BATCH,
        "k": args.k,
        "level": OOD_LEVEL,
        "scores": {
            row["score"]: {key: row[key] for key in ("auroc", "low", "high")} for row in rows
        },
    }


def _is_interrupt(error: BaseException) -> bool:
    """Ctrl-C: a KeyboardInterrupt, also one that arrived while pybind11 was converting a
    TensorFlow error (it then surfaces as a RuntimeError that names it)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    return isinstance(error, RuntimeError) and "REPLACED BY KeyboardInterrupt" in str(error)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vae_tutorial`` and the ``vae-tutorial`` script."""
    args = build_parser().parse_args(argv)
    command = {"train": cmd_train, "evaluate": cmd_evaluate}[args.command]
    try:
        return command(args)
    except CLIError as error:
        code = error.exit_code
        message = str(error)
    except (KeyboardInterrupt, RuntimeError) as error:
        if not _is_interrupt(error):
            raise
        code, message = 130, "interrupted."
    except (ValueError, TypeError, OSError, FloatingPointError) as error:
        code, message = 1, str(error) or type(error).__name__
    except Exception as error:  # TensorFlow's OpError (e.g. a damaged checkpoint)
        if type(error).__module__.split(".")[0] != "tensorflow":
            raise
        code, message = 1, f"{type(error).__name__}: {getattr(error, 'message', error)}"
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code
